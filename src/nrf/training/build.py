"""From a validated :class:`~nrf.training.config.Config` to networks, sampler and objective,
through the registries (:data:`~nrf.samplers.SAMPLERS`, :data:`~nrf.objectives.OBJECTIVES`)."""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable
from typing import Any

from torch import nn

from nrf.energies import POTENTIALS, RBM, paper_potential
from nrf.generators import GENERATORS, LatentGenerator, paper_generator
from nrf.objectives import OBJECTIVES, Objective
from nrf.registry import ConfigError, checkable, convert
from nrf.samplers import SAMPLERS, Sampler
from nrf.targets import RBMTarget
from nrf.training.config import Config


def register_objective(name: str, **options: Any) -> Callable[[Any], Any]:
    """Decorator: make an objective class (or factory) available as ``objective.name = NAME``
    (``context`` names the arguments supplied by the builder: ``energy``, ``generator``,
    ``sampler``)."""
    options.setdefault("context", ("energy", "generator", "sampler"))
    return OBJECTIVES.register(name, **options)


def build_sampler(spec: dict[str, Any]) -> Sampler:
    """The sampler of a ``[sampler]`` table (its ``steps`` belongs to the objective)."""
    return SAMPLERS.build({k: v for k, v in spec.items() if k != "steps"}, key="sampler")


def _network(
    key: str,
    preset_key: str,
    build: Callable[..., Any],
    preset: str,
    n_models: int | None,
    args: dict[str, Any],
) -> Any:
    """The preset network ``preset`` with constructor overrides ``args`` (the table ``key``);
    a bad override is refused as a :class:`ConfigError` naming ``key.ARG``."""
    for reserved, owner in (("name", preset_key), ("n_models", "model.n_models")):
        if reserved in args:
            raise ConfigError(f"{key}.{reserved}: not a network argument (it is set by {owner})")
    try:
        return build(preset, n_models, **args)
    except (TypeError, ValueError) as exc:
        message = str(exc)
    # find the override at fault against the network's constructor (the default preset's class)
    cls = type(build(preset))
    params = dict(inspect.signature(cls.__init__).parameters)
    params.pop("self", None)
    open_ended = any(p.kind is p.VAR_KEYWORD for p in params.values())
    try:
        hints = typing.get_type_hints(cls.__init__)
    except (NameError, TypeError):  # unresolvable annotations: names only
        hints = {}
    for arg, value in args.items():
        if arg not in params and not open_ended:
            raise ConfigError(
                f"{key}.{arg}: not an argument of {cls.__name__} (its arguments: {', '.join(params)})"
            )
        if arg in hints and checkable(hints[arg]):
            convert(value, hints[arg], f"{key}.{arg}")
    first = re.match(r"[A-Za-z_]\w*", message)
    where = f"{key}.{first.group()}" if first and first.group() in args else key
    raise ConfigError(f"{where}: {message}") from None


def build_networks(cfg: Config) -> tuple[nn.Module, LatentGenerator | None]:
    """The energy network of ``model.energy`` (and the generator of ``model.generator``) with
    their ``*_args`` overrides, ``model.n_models`` members each."""
    if cfg.model.energy not in POTENTIALS:
        raise ConfigError(f"model.energy: expected one of {list(POTENTIALS)}, got {cfg.model.energy!r}")
    n_models = cfg.model.n_models if cfg.model.n_models > 1 else None
    energy = _network(
        "model.energy_args",
        "model.energy",
        paper_potential,
        cfg.model.energy,
        n_models,
        cfg.model.energy_args,
    )
    generator = None
    if cfg.model.generator is not None:
        if cfg.model.generator not in GENERATORS:
            raise ConfigError(
                f"model.generator: expected one of {list(GENERATORS)}, got {cfg.model.generator!r}"
            )
        generator = _network(
            "model.generator_args", "model.generator", paper_generator, cfg.model.generator, n_models,
            cfg.model.generator_args,
        )  # fmt: skip
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
    if "target" in entry.context and isinstance(energy, RBM):
        context["target"] = RBMTarget  # Gibbs samplers need its conditionals; -F(v) for the others
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
