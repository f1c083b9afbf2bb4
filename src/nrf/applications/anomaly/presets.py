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
from dataclasses import dataclass, field
from typing import Any

from nrf._checks import check_choice


@dataclass(frozen=True)
class DetectorPreset:
    """Networks (by :func:`~nrf.energies.paper_potential` / :func:`~nrf.generators.paper_generator`
    name) and the component specs of one preset."""

    network: str
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


DETECTOR_PRESETS: dict[str, DetectorPreset] = {
    "tabular": DetectorPreset(
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


def detector_preset(name: str) -> DetectorPreset:
    """The preset called ``name`` (``"tabular"`` or ``"mnist"``).

    >>> detector_preset("tabular").epochs
    15
    """
    check_choice("network", name, list(DETECTOR_PRESETS))
    return DETECTOR_PRESETS[name]
