"""The detector's arguments resolved into component specs, and the objective they build.

:func:`resolve_settings` turns an :class:`~nrf.applications.anomaly.NRFDetector`'s arguments
(``None``: the preset's value) into a typed :class:`DetectorSettings`: objective, sampler and
optimizer specs of the registries and the loop's settings; :func:`build_objective` builds
the networks, sampler and objective from them.
"""

from __future__ import annotations

import copy
import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from nrf._checks import check_box, check_choice, check_positive, check_positive_int
from nrf.applications.anomaly.presets import DetectorPreset, detector_preset
from nrf.energies import BatchedMLPEnergy, MLPEnergy, paper_potential
from nrf.generators import paper_generator
from nrf.objectives import OBJECTIVES, Objective
from nrf.registry import plain
from nrf.samplers import SAMPLERS

METHODS = ("inclusive", "cd", "dsm", "ssm", "nce")
AUTO_NOISE = "auto"  # dsm ``sigmas``: chosen from the training rows at fit (noise_levels)
SCORE_METHODS = ("dsm", "ssm", "nce")  # one energy network, no generator, no sampling in training
SCALINGS = ("standard", "minmax", "none")
SELECTIONS = ("final", "best")
SAMPLER_CHOICES = ("sgld", "sghmc")
OPTIMIZER_CHOICES = ("adam", "rmsprop")
LR_SCHEDULE_CHOICES = ("constant", "cosine")
CONTROLS = ("data", "both")
# potential_init -> arguments of the preset potential's constructor
POTENTIAL_INITS: dict[str, dict[str, Any]] = {
    "data": {},
    "data-fixed": {"scale_trainable": False},
    "unit": {"scale_trainable": False, "init": "unit"},
}


@dataclass(frozen=True)
class DetectorSettings:
    """A detector's arguments resolved against its preset: what :meth:`NRFDetector.fit` builds.

    ``objective``, ``sampler`` and ``optim`` are component specs (``{"name": ..., ...}``)
    of :data:`~nrf.objectives.OBJECTIVES`, :data:`~nrf.samplers.SAMPLERS` and
    :data:`~nrf.training.loop.OPTIMIZERS`; the rest configures the networks and the loop.
    """

    preset: DetectorPreset
    method: str
    objective: dict[str, Any]
    sampler: dict[str, Any]
    optim: dict[str, dict[str, Any]]
    epochs: int
    batch_size: int
    sigma: float
    potential_init: str
    ema: float | None
    lr_schedule: str
    scaling: str
    validation_fraction: float
    selection: str
    min_iterations: int
    epochs_given: bool
    diagnostic_sampler: dict[str, Any]
    noise_ladder: tuple[float, ...] = (1.0,)  # dsm levels "auto": multiples of the chosen bandwidth
    noise_unit: float | None = None  # and the network's input unit, as a fraction of the first

    def iterations(self, n_rows: int, per_epoch: int) -> int:
        """Iterations of a fit with ``per_epoch`` batches per epoch: ``epochs`` epochs, raised
        to at least ``min_iterations`` when the epochs are the preset's (not given)."""
        steps = self.epochs * per_epoch
        return steps if self.epochs_given else max(steps, self.min_iterations)

    def to_config(self) -> dict[str, Any]:
        """The settings as plain data (for benchmark records)."""
        return plain(
            {
                "network": self.preset.name, "method": self.method, "objective": self.objective,
                "sampler": self.sampler, "optim": self.optim, "epochs": self.epochs,
                "batch_size": self.batch_size, "sigma": self.sigma, "potential_init": self.potential_init,
                "ema": self.ema, "lr_schedule": self.lr_schedule, "scaling": self.scaling,
                "validation_fraction": self.validation_fraction, "selection": self.selection,
                "min_iterations": self.min_iterations, "epochs_given": self.epochs_given,
                "diagnostic_sampler": self.diagnostic_sampler,
                **({"noise_ladder": list(self.noise_ladder), "noise_unit": self.noise_unit}
                   if needs_noise_rule(self) else {}),
            }
        )  # fmt: skip


def _check_clamp(given: Any, value: Any) -> tuple[float, float] | None:
    """The revision box: ``value`` (the argument ``given`` or the preset's) as floats."""
    if value is None or value == "off":
        return None
    try:
        return check_box("clamp", value)
    except ValueError:
        raise ValueError(
            f"clamp must be (low, high) with finite low < high, 'off' or None, got {given!r}"
        ) from None


def _check_options(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"objective_options must be a dict of option names to values or None, got {value!r}")
    reserved = sorted(set(value) & {"name", "energy", "generator", "sampler"})
    if reserved:
        raise ValueError(f"objective_options: {reserved[0]!r} is set by the detector, not an option")
    return dict(value)


def resolve_settings(d: Any, input_shape: tuple[int, ...] | None = None) -> DetectorSettings:
    """The arguments of a detector ``d`` (its ``get_params()`` as attributes), validated, with
    the preset's values for ``None``; errors name the argument. ``input_shape`` (one row's
    shape) decides ``network="auto"``."""
    c = d.contamination
    if isinstance(c, bool) or not isinstance(c, numbers.Real) or not 0.0 < float(c) <= 0.5:
        raise ValueError(f"contamination must be a number in (0, 0.5], got {c!r}")
    check_choice("sampler", d.sampler, SAMPLER_CHOICES)
    check_choice("revision", d.revision, ("paper", "x-only"))
    check_choice("device", d.device, ("cpu", "cuda", "auto"))
    check_choice("selection", d.selection, SELECTIONS)
    preset = detector_preset(d.network, input_shape)
    method = check_choice("method", preset.method if d.method is None else d.method, METHODS)
    options = _check_options(d.objective_options)
    check_positive_int("n_estimators", d.n_estimators)
    if method == "nce" and d.n_estimators > 1:
        raise ValueError(
            f"n_estimators > 1 is not available for method='nce' (one log-normalizer), got {d.n_estimators}"
        )
    custom = [name for name in ("energy", "generator") if getattr(d, name) is not None]
    if d.n_estimators > 1 and custom:
        raise ValueError(
            f"n_estimators > 1 batches the preset networks; got n_estimators = {d.n_estimators} "
            f"with a custom {custom[0]} (fit several detectors instead)"
        )

    def pick(value: Any, default: Any) -> Any:
        return default if value is None else value

    # the sampler: the preset's spec for this sampler, with the arguments given
    sampler = dict(preset.samplers[d.sampler])
    sampler["step_size"] = check_positive("step_size", pick(d.step_size, sampler["step_size"]))
    if d.sampler == "sghmc":
        sampler["beta"] = check_positive("beta", pick(d.beta, sampler["beta"]))
        if sampler["beta"] > 1.0:
            raise ValueError(f"beta must be in (0, 1], got {d.beta!r}")
    elif d.beta is not None:
        check_positive("beta", d.beta)
    noise = pick(d.noise_scale, sampler.get("noise_scale", "paper"))
    if noise == "paper" or noise is None:  # sqrt(2 delta) (SGLD) or sqrt(2 beta delta) (SGHMC)
        sampler["noise_scale"] = None
    elif isinstance(noise, str):
        raise ValueError(f"noise_scale must be a number >= 0, 'paper' or None, got {noise!r}")
    else:
        sampler["noise_scale"] = check_positive("noise_scale", noise, allow_zero=True)
    clamp = _check_clamp(d.clamp, pick(d.clamp, sampler.get("clamp")))
    sampler["clamp"] = clamp
    # the objective
    steps = check_positive_int("revision_steps", pick(d.revision_steps, preset.objective["steps"]))
    alpha_p = check_positive("alpha_p", pick(d.alpha_p, preset.objective["alpha_p"]), allow_zero=True)
    control = check_choice("control", pick(d.control, preset.objective["control"]), CONTROLS)
    objective: dict[str, Any]
    if method == "cd":
        objective = {"name": "cd", "k": steps, "start": "data", "alpha": alpha_p}
    elif method == "inclusive":
        objective = {"name": "inclusive", "steps": steps, "revision": d.revision, "alpha_p": alpha_p,
                     "control": control}  # fmt: skip
    else:
        objective = {"name": method, **preset.score_objectives.get(method, {})}
    rule = {k: options.pop(k) for k in ("noise_ladder", "noise_unit") if k in options}
    objective.update(options)
    if rule and objective.get("sigmas") != AUTO_NOISE:
        raise ValueError(
            f"objective_options: {sorted(rule)[0]!r} shapes the levels chosen from the data and needs "
            f"method='dsm' with sigmas='auto', got sigmas={objective.get('sigmas')!r}"
        )
    ladder = rule.get("noise_ladder", preset.noise_ladder)
    if (
        not isinstance(ladder, (list, tuple)) or not ladder
        or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) and float(v) > 0 for v in ladder)
    ):  # fmt: skip
        raise ValueError(f"objective_options: noise_ladder must be positive numbers, got {ladder!r}")
    unit = rule.get("noise_unit", preset.noise_unit)
    if unit is not None:
        unit = check_positive("noise_unit", unit)
    if isinstance(objective.get("sigmas"), str) and (method != "dsm" or objective["sigmas"] != AUTO_NOISE):
        raise ValueError(
            f"objective_options: sigmas must be noise levels (numbers) or 'auto' for method='dsm', "
            f"got {objective['sigmas']!r}"
        )
    # the optimizers
    if d.optimizer is not None:
        check_choice("optimizer", d.optimizer, OPTIMIZER_CHOICES)
    optimizer = check_choice(
        "optimizer", pick(d.optimizer, preset.optim["energy"]["name"]), OPTIMIZER_CHOICES
    )
    lrs = {
        "energy": check_positive("lr", pick(d.lr, preset.optim["energy"]["lr"])),
        "generator": check_positive("lr_generator", pick(d.lr_generator, preset.optim["generator"]["lr"])),
    }
    betas = pick(d.betas, preset.betas)
    pair = isinstance(betas, (tuple, list, np.ndarray)) and len(betas) == 2
    numbers_ok = pair and all(isinstance(b, numbers.Real) and not isinstance(b, bool) for b in betas)
    if not numbers_ok or not all(0 <= b < 1 for b in betas):
        raise ValueError(f"betas must be two numbers in [0, 1), got {d.betas!r}")
    optim: dict[str, dict[str, Any]] = {}
    if method in SCORE_METHODS:  # one energy network: the preset's optimizer for these methods
        score_spec = dict(preset.score_optim)
        given = d.optimizer is not None and d.optimizer != score_spec["name"]
        built = {
            "name": optimizer if given else score_spec["name"],
            "lr": float(check_positive("lr", pick(d.lr, score_spec["lr"]))),
        }
        if built["name"] == "adam":
            built["betas"] = tuple(
                float(b) for b in (betas if d.betas is not None else score_spec.get("betas", betas))
            )
        optim["energy"] = built
    for group, spec in () if method in SCORE_METHODS else preset.optim.items():
        if optimizer == spec["name"]:
            built = {**spec, "lr": lrs[group]}
        else:  # another optimizer than the preset's: its own defaults (RMSprop: the authors')
            built = {"name": optimizer, "lr": lrs[group]}
        if optimizer == "adam":
            built["betas"] = (float(betas[0]), float(betas[1]))
        optim[group] = built
    # the loop and the networks
    default_ema = preset.score_ema if method in SCORE_METHODS else preset.ema
    ema: Any = (default_ema if default_ema is not None else "off") if d.ema is None else d.ema
    if ema == "off":
        ema = None
    elif isinstance(ema, (str, bool)) or not (isinstance(ema, numbers.Real) and 0.0 < float(ema) < 1.0):
        raise ValueError(f"ema must be a number in (0, 1), 'off' or None, got {d.ema!r}")
    sigma = check_positive("sigma", pick(d.sigma, preset.sigma), allow_zero=True)
    if method == "inclusive" and d.revision == "paper" and sigma == 0.0 and d.generator is None:
        raise ValueError("sigma must be > 0 with revision='paper'; use revision='x-only' for sigma = 0")
    scaling = check_choice("scaling", pick(d.scaling, preset.scaling), SCALINGS)
    fraction = pick(d.validation_fraction, preset.validation_fraction)
    if (
        isinstance(fraction, bool)
        or not isinstance(fraction, numbers.Real)
        or not 0.0 <= float(fraction) < 0.5
    ):
        raise ValueError(
            f"validation_fraction must be a number in [0, 0.5) or None, got {d.validation_fraction!r}"
        )
    if d.selection == "best" and float(fraction) == 0.0:
        raise ValueError("selection='best' chooses on held-out rows: set validation_fraction > 0")
    if d.selection == "best" and method not in SCORE_METHODS:
        raise ValueError(
            f"selection='best' compares the held-out loss, which method={method!r} does not have "
            f"(choose one of {list(SCORE_METHODS)}, or selection='final')"
        )
    diagnostic = dict(preset.diagnostic_sampler)
    if method in SCORE_METHODS:  # these methods sample (sample(), restoration) with this sampler
        if d.step_size is not None:
            diagnostic["step_size"] = check_positive("step_size", d.step_size)
        sampler = dict(diagnostic)
    lr_schedule_default = preset.score_lr_schedule if method in SCORE_METHODS else preset.lr_schedule
    return DetectorSettings(
        preset=preset, method=method, objective=objective, sampler=sampler, optim=optim,
        epochs=check_positive_int("epochs", pick(d.epochs, preset.epochs)),
        batch_size=check_positive_int("batch_size", pick(d.batch_size, preset.batch_size)),
        sigma=sigma,
        potential_init=check_choice("potential_init", pick(d.potential_init, preset.potential_init),
                                    list(POTENTIAL_INITS)),
        ema=None if ema is None else float(ema),
        lr_schedule=check_choice(
            "lr_schedule", pick(d.lr_schedule, lr_schedule_default), LR_SCHEDULE_CHOICES
        ),
        scaling=scaling, validation_fraction=float(fraction), selection=d.selection,
        min_iterations=preset.min_iterations, epochs_given=d.epochs is not None,
        diagnostic_sampler=diagnostic,
        noise_ladder=tuple(float(v) for v in ladder), noise_unit=None if unit is None else float(unit),
    )  # fmt: skip


def needs_noise_rule(s: DetectorSettings) -> bool:
    """Whether the objective's noise levels are chosen from the training rows at fit."""
    return s.objective["name"] == "dsm" and isinstance(s.objective.get("sigmas"), str)


def rescales_input(s: DetectorSettings) -> bool:
    """Whether the rows are divided by a multiple of the chosen noise level at fit."""
    return needs_noise_rule(s) and s.noise_unit is not None


def noise_levels(s: DetectorSettings, bandwidth: float) -> tuple[float, ...]:
    """The dsm levels of settings ``s`` for the chosen ``bandwidth``: the preset's
    ``noise_ladder`` times it (the first is the reference level)."""
    return tuple(float(bandwidth * m) for m in s.noise_ladder)


def build_objective(
    d: Any, s: DetectorSettings, n_features: int, levels: tuple[float, ...] | None = None
) -> Objective:
    """The objective of settings ``s`` for rows of ``n_features``, with the networks of the
    preset (or the detector ``d``'s own ``energy`` / ``generator``, copied); ``levels`` are
    the dsm noise levels chosen at fit when the settings' ``sigmas`` are ``"auto"``."""
    preset = s.preset
    shape = preset.event_shape or (n_features,)
    if math.prod(shape) != n_features:
        raise ValueError(
            f"network={d.network!r} needs {math.prod(shape)} features per row "
            f"(images of shape {shape}), got {n_features}"
        )
    wide: dict[str, Any] = {} if preset.event_shape else {"event_shape": shape}
    models = None if d.n_estimators == 1 else d.n_estimators
    energy: Any
    if d.energy is not None:
        energy = copy.deepcopy(d.energy)
    elif s.method in SCORE_METHODS:
        net = dict(preset.score_network)
        energy = MLPEnergy(shape, **net) if models is None else BatchedMLPEnergy(models, shape, **net)
    else:
        energy = paper_potential(preset.network, models, **wide, **POTENTIAL_INITS[s.potential_init])
    sampler = SAMPLERS.build(s.sampler, key="sampler")
    generator = None
    if s.objective["name"] == "inclusive":
        if d.generator is not None:
            generator = copy.deepcopy(d.generator)
        else:
            generator = paper_generator(preset.network, models, **wide, sigma=s.sigma)
    spec = dict(s.objective)
    if needs_noise_rule(s):
        if levels is None:
            raise ValueError("the dsm noise levels are chosen at fit ('auto'): pass the chosen levels")
        spec["sigmas"], spec["sigma"] = list(levels), levels[0]
    objective: Objective = OBJECTIVES.build(spec, energy=energy, generator=generator, sampler=sampler)
    return objective
