"""Networks and training settings of the anomaly detector, by name, as component specs.

==========  ===================================================================  ==========
preset      networks and settings                                                source
==========  ===================================================================  ==========
tabular     potential d-60-30-10-1 tanh (weight norm); generator h(5) -> 10, 30,   Table VII
            60 tanh BN -> d; batch 1024, Adam(0.5, 0.999), lr 1e-4 / 3e-4,        (KDDCUP99)
            L = 10, alpha_p = 0.1; SGLD step 0.003, SGHMC beta 0.3 step 0.03;
            departures: noiseless revision, cosine schedule, 15 epochs, EMA 0.999
mnist       potential 784-1000-500-250-250-250-1 leaky ReLU (WN); generator      Table VIII
            h(100) -> 500, 500 softplus BN -> 784 sigmoid; batch 100, 50 epochs,  (MNIST)
            lr 3e-3 / 1e-3, L = 20, alpha_p = 1; SGLD step 0.001, SGHMC beta 0.5
            step 0.003; the authors' code: RMSprop, noiseless revision clipped to
            [0, 1], sigma 0.1, hidden scales fixed after the data-dependent init
==========  ===================================================================  ==========

A preset composes the specs of the components it builds: one optimizer spec per
parameter group (:data:`nrf.training.loop.OPTIMIZERS`), one sampler spec per detector
``sampler`` choice (:data:`nrf.samplers.SAMPLERS`), and the objective's options
(:data:`nrf.objectives.OBJECTIVES`). The validation studies behind each departure from
the tables are in ``docs/experiments/detector-tabular-preset.md`` and
``docs/experiments/detector-mnist-preset.md``. ``tabular`` adapts its widths to the number
of features; ``mnist`` needs 784 features (28 x 28 images).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from nrf._checks import check_choice


@dataclass(frozen=True)
class DetectorPreset:
    """Networks (by :func:`~nrf.energies.paper_potential` / :func:`~nrf.generators.paper_generator`
    name) and the component specs of one preset."""

    name: str
    network: str  # the paper potential / generator of the generator-based methods
    event_shape: tuple[int, ...] | None  # None: (n_features,)
    batch_size: int
    epochs: int
    optim: Mapping[str, Mapping[str, Any]]  # parameter group -> optimizer spec
    samplers: Mapping[str, Mapping[str, Any]]  # detector `sampler` -> sampler spec
    objective: Mapping[str, Any] = field(default_factory=dict)  # options shared by the methods
    betas: tuple[float, float] = (0.5, 0.999)  # Adam's, when the detector's optimizer is "adam"
    ema: float | None = 0.999
    lr_schedule: str = "constant"
    potential_init: str = "data"
    sigma: float = 0.0
    method: str = "inclusive"  # the detector's method when its `method` is None
    scaling: str = "none"  # "standard": features standardized on the training rows
    min_iterations: int = 1000  # preset epochs are raised to at least this many iterations
    validation_fraction: float = 0.0  # share of the training rows held out for the diagnostics
    # the energy network of the methods without a generator (dsm, ssm, nce): MLPEnergy options
    score_network: Mapping[str, Any] = field(
        default_factory=lambda: {"hidden": (128, 128), "activation": "softplus", "norm": "none"}
    )
    # options of those methods' objectives, and their optimizer
    score_objectives: Mapping[str, Mapping[str, Any]] = field(
        default_factory=lambda: {
            "dsm": {"sigmas": (0.1,)},
            "ssm": {"n_projections": 1},
            "nce": {"noise_ratio": 4},
        }
    )
    score_optim: Mapping[str, Any] = field(
        default_factory=lambda: {"name": "adam", "lr": 1e-3, "betas": (0.9, 0.999)}
    )
    # the noise levels of "dsm" when its ``sigmas`` are "auto", as multiples of the bandwidth
    # chosen on the training rows (nrf.metrics.kde_bandwidth); the first is the reference level
    noise_ladder: tuple[float, ...] = (1.0,)
    # with those levels, the network's input unit as a fraction of the reference level (the
    # rows are divided by noise_unit * level before the network sees them); None: as scaled
    noise_unit: float | None = None
    score_lr_schedule: str = "cosine"
    score_ema: float | None = None  # their final model: the last iterate (an average lags behind)
    # the Langevin sampler of the diagnostic chains (and of sampling dsm / ssm / nce models)
    diagnostic_sampler: Mapping[str, Any] = field(
        default_factory=lambda: {"name": "langevin", "step_size": 0.01}
    )


DETECTOR_PRESETS: dict[str, DetectorPreset] = {
    "tabular": DetectorPreset(
        name="tabular",
        network="kdd",
        event_shape=None,
        batch_size=1024,
        epochs=15,
        optim={
            "energy": {"name": "adam", "lr": 1e-4, "betas": (0.5, 0.999)},
            "generator": {"name": "adam", "lr": 3e-4, "betas": (0.5, 0.999)},
        },
        samplers={
            "sgld": {"name": "langevin", "step_size": 0.003, "noise_scale": 0.0},
            "sghmc": {"name": "sghmc", "step_size": 0.03, "beta": 0.3, "noise_scale": 0.0},
        },
        objective={"steps": 10, "alpha_p": 0.1, "control": "data"},
        lr_schedule="cosine",
    ),
    "mnist": DetectorPreset(
        name="mnist",
        network="mnist",
        event_shape=(1, 28, 28),
        batch_size=100,
        epochs=50,
        optim={
            "energy": {"name": "rmsprop", "lr": 3e-3, "alpha": 0.9, "eps": 1e-6},
            "generator": {"name": "rmsprop", "lr": 1e-3, "alpha": 0.9, "eps": 1e-6},
        },
        samplers={
            "sgld": {"name": "langevin", "step_size": 0.001, "noise_scale": 0.0, "clamp": (0.0, 1.0)},
            "sghmc": {
                "name": "sghmc",
                "step_size": 0.003,
                "beta": 0.5,
                "noise_scale": 0.0,
                "clamp": (0.0, 1.0),
            },
        },
        objective={"steps": 20, "alpha_p": 1.0, "control": "data"},
        betas=(0.0, 0.9),  # Table VIII's Adam, for optimizer="adam"
        potential_init="data-fixed",
        sigma=0.1,
    ),
}


DETECTOR_PRESETS["tabular-stable"] = replace(
    DETECTOR_PRESETS["tabular"],
    name="tabular-stable",
    method="dsm",
    scaling="minmax",
    epochs=10,
    validation_fraction=0.1,
    score_objectives={"dsm": {"sigmas": "auto"}, "ssm": {"n_projections": 1}, "nce": {"noise_ratio": 4}},
    noise_unit=0.1,
)
DETECTOR_PRESETS["mnist-stable"] = replace(
    DETECTOR_PRESETS["mnist"],
    name="mnist-stable",
    method="dsm",
    batch_size=128,
    epochs=40,
    validation_fraction=0.1,
    score_network={"hidden": (512, 512), "activation": "softplus", "norm": "none"},
    score_objectives={
        "dsm": {"sigmas": tuple(round(0.05 * 20 ** (k / 7), 4) for k in range(8)), "sigma": 0.05},
        "ssm": {"n_projections": 1},
        "nce": {"noise_ratio": 4, "noise_shrinkage": 0.05},
    },
    diagnostic_sampler={"name": "langevin", "step_size": 1e-4, "clamp": (0.0, 1.0)},
)
PRESET_NAMES = ("auto", *DETECTOR_PRESETS)


def detector_preset(name: str, input_shape: tuple[int, ...] | None = None) -> DetectorPreset:
    """The preset called ``name``; ``"auto"`` is ``"mnist-stable"`` for rows of 28 x 28 images
    (``input_shape`` ``(28, 28)`` or ``(1, 28, 28)``) and ``"tabular-stable"`` otherwise.

    >>> detector_preset("tabular").epochs
    15
    >>> detector_preset("auto", (20,)).name
    'tabular-stable'
    """
    check_choice("network", name, PRESET_NAMES)
    if name == "auto":
        images = input_shape is not None and tuple(input_shape) in ((28, 28), (1, 28, 28))
        return DETECTOR_PRESETS["mnist-stable" if images else "tabular-stable"]
    return DETECTOR_PRESETS[name]
