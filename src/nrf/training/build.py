"""From a validated :class:`~nrf.training.config.Config` to networks, sampler and objective,
through the registries (:data:`~nrf.samplers.SAMPLERS`, :data:`~nrf.objectives.OBJECTIVES`)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from nrf.energies import POTENTIALS, paper_potential
from nrf.generators import GENERATORS, LatentGenerator, paper_generator
from nrf.objectives import OBJECTIVES, Objective
from nrf.registry import ConfigError
from nrf.samplers import SAMPLERS, Sampler
from nrf.training.config import Config


def register_objective(name: str, **options: Any) -> Callable[[Any], Any]:
    """Decorator: make an objective class (or factory) available as ``objective.name = NAME``
    (``context`` names the arguments supplied by the builder: ``energy``, ``generator``,
    ``sampler``)."""
    options.setdefault("context", ("energy", "generator", "sampler"))
    return OBJECTIVES.register(name, **options)


def _call(key: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a constructor; turn a bad keyword or value into a ConfigError naming ``key``."""
    try:
        return fn(*args, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{key}: {exc}") from None


def build_sampler(spec: dict[str, Any]) -> Sampler:
    """The sampler of a ``[sampler]`` table (its ``steps`` belongs to the objective)."""
    return SAMPLERS.build({k: v for k, v in spec.items() if k != "steps"}, key="sampler")


def build_networks(cfg: Config) -> tuple[nn.Module, LatentGenerator | None]:
    if cfg.model.energy not in POTENTIALS:
        raise ConfigError(f"model.energy: expected one of {list(POTENTIALS)}, got {cfg.model.energy!r}")
    n_models = cfg.model.n_models if cfg.model.n_models > 1 else None
    energy = _call("model.energy_args", paper_potential, cfg.model.energy, n_models, **cfg.model.energy_args)
    generator = None
    if cfg.model.generator is not None:
        if cfg.model.generator not in GENERATORS:
            raise ConfigError(
                f"model.generator: expected one of {list(GENERATORS)}, got {cfg.model.generator!r}"
            )
        generator = _call(
            "model.generator_args", paper_generator, cfg.model.generator, n_models, **cfg.model.generator_args
        )
    return energy, generator


def build_objective(cfg: Config) -> Objective:
    """Networks, sampler and the objective named by ``objective.name``; the sampler's
    ``steps`` becomes the objective's ``steps`` (or ``k`` for CD-k) unless its args set it."""
    entry = OBJECTIVES.entry(cfg.objective.name, "objective.name")
    energy, generator = build_networks(cfg)
    if "generator" in entry.context and generator is None:
        target = entry.factory.__init__ if inspect.isclass(entry.factory) else entry.factory
        if inspect.signature(target).parameters["generator"].default is inspect.Parameter.empty:
            raise ConfigError(f"model.generator: the {cfg.objective.name!r} objective needs a generator")
    args = dict(cfg.objective.args)
    context: dict[str, Any] = {"energy": energy, "generator": generator}
    if "sampler" in entry.context:
        context["sampler"] = build_sampler(cfg.sampler)
        params = entry.parameters()
        steps_arg = "k" if "k" in params else "steps" if "steps" in params else None
        if steps_arg is not None and steps_arg not in args:
            args[steps_arg] = cfg.sampler.get("steps", 10)
            try:
                return OBJECTIVES.build({"name": entry.name, **args}, key="objective.args", **context)
            except ConfigError as exc:  # a bad sampler.steps: name the key it came from
                prefix = f"objective.args.{steps_arg}: "
                if str(exc).startswith(prefix):
                    raise ConfigError(f"sampler.steps: {str(exc)[len(prefix) :]}") from None
                raise
    objective: Objective = OBJECTIVES.build({"name": entry.name, **args}, key="objective.args", **context)
    return objective
