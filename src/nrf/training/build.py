"""From a validated :class:`~nrf.training.config.Config` to networks, sampler and objective."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from nrf.energies import POTENTIALS, paper_potential
from nrf.generators import GENERATORS, LatentGenerator, paper_generator
from nrf.objectives import GAN, WGANGP, ContrastiveDivergence, ExclusiveNRF, InclusiveNRF, Objective
from nrf.samplers import HMC, MPPI, SGHMC, Langevin, Sampler
from nrf.training.config import Config, ConfigError, SamplerSection

ObjectiveBuilder = Callable[[Config, nn.Module, "LatentGenerator | None", Sampler], Objective]
OBJECTIVES: dict[str, ObjectiveBuilder] = {}


def register_objective(name: str) -> Callable[[ObjectiveBuilder], ObjectiveBuilder]:
    """Decorator: make an objective available as ``objective.name = NAME`` in configs."""

    def wrap(builder: ObjectiveBuilder) -> ObjectiveBuilder:
        OBJECTIVES[name] = builder
        return builder

    return wrap


def _call(key: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a constructor; turn a bad keyword or value into a ConfigError naming ``key``."""
    try:
        return fn(*args, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"{key}: {exc}") from None
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc}") from None


def build_sampler(section: SamplerSection) -> Sampler:
    clamp = None
    if section.clamp is not None:
        if len(section.clamp) != 2:
            raise ConfigError(f"sampler.clamp: expected [low, high], got {section.clamp!r}")
        clamp = (section.clamp[0], section.clamp[1])
    common = {"noise_scale": section.noise_scale, "grad_clip": section.grad_clip, "clamp": clamp}
    if section.name == "langevin":
        return _call("sampler", Langevin, section.step_size, **common)
    if section.name == "mala":
        return _call("sampler", Langevin, section.step_size, mh=True, noise_scale=section.noise_scale)
    if section.name == "sghmc":
        return _call("sampler", SGHMC, section.step_size, section.beta, **common)
    if section.name == "hmc":
        return _call("sampler", HMC, section.step_size)
    if section.name == "mppi":
        return _call("sampler", MPPI, section.step_size)
    raise ConfigError(f"sampler.name: expected langevin, mala, sghmc, hmc or mppi, got {section.name!r}")


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
            "model.generator_args", paper_generator, cfg.model.generator, **cfg.model.generator_args
        )
    return energy, generator


def build_objective(cfg: Config) -> Objective:
    """Networks, sampler and the objective named by ``objective.name``."""
    if cfg.objective.name not in OBJECTIVES:
        raise ConfigError(f"objective.name: expected one of {sorted(OBJECTIVES)}, got {cfg.objective.name!r}")
    energy, generator = build_networks(cfg)
    sampler = build_sampler(cfg.sampler)
    return OBJECTIVES[cfg.objective.name](cfg, energy, generator, sampler)


@register_objective("cd")
def _cd(cfg: Config, energy: nn.Module, generator: LatentGenerator | None, sampler: Sampler) -> Objective:
    args = dict(cfg.objective.args)
    if "noise_range" in args:
        args["noise_range"] = tuple(args["noise_range"])
    return _call("objective.args", ContrastiveDivergence, energy, sampler, cfg.sampler.steps, **args)


def _needs_generator(cfg: Config, gen: LatentGenerator | None) -> LatentGenerator:
    if gen is None:
        raise ConfigError(f"model.generator: the {cfg.objective.name!r} objective needs a generator")
    return gen


@register_objective("inclusive")
def _inclusive(cfg: Config, energy: nn.Module, gen: LatentGenerator | None, sampler: Sampler) -> Objective:
    g, args = _needs_generator(cfg, gen), cfg.objective.args
    return _call("objective.args", InclusiveNRF, energy, g, sampler, cfg.sampler.steps, **args)


@register_objective("exclusive")
def _exclusive(cfg: Config, energy: nn.Module, gen: LatentGenerator | None, sampler: Sampler) -> Objective:
    return _call("objective.args", ExclusiveNRF, energy, _needs_generator(cfg, gen), **cfg.objective.args)


@register_objective("gan")
def _gan(cfg: Config, energy: nn.Module, gen: LatentGenerator | None, sampler: Sampler) -> Objective:
    return _call("objective.args", GAN, energy, _needs_generator(cfg, gen), **cfg.objective.args)


@register_objective("wgan-gp")
def _wgan(cfg: Config, energy: nn.Module, gen: LatentGenerator | None, sampler: Sampler) -> Objective:
    return _call("objective.args", WGANGP, energy, _needs_generator(cfg, gen), **cfg.objective.args)
