"""Networks and hyper-parameters of the anomaly-detection experiments, by name.

==========  ===================================================================  ==========
preset      networks and settings                                                source
==========  ===================================================================  ==========
tabular     potential d-60-30-10-1 tanh (weight norm); generator h(5) -> 10, 30,   Table VII
            60 tanh BN -> d; batch 1024, 30 epochs (15 here, see below),          (KDDCUP99)
            Adam(0.5, 0.999), lr 1e-4 / 3e-4, L = 10, alpha_p = 0.1; SGLD step
            0.003, SGHMC beta 0.3 step 0.03
mnist       potential 784-1000-500-250-250-250-1 leaky ReLU (WN); generator      Table VIII
            h(100) -> 500, 500 softplus BN -> 784 sigmoid; batch 100, 50 epochs,  (MNIST)
            Adam(0, 0.9), lr 3e-3 / 1e-3, L = 20, alpha_p = 1; SGLD step 0.001,
            SGHMC beta 0.5 step 0.003
==========  ===================================================================  ==========

Departures from the tables (``tabular``), chosen on validation data only: the training half
of two random 50/50 splits that are not among the benchmark's (``RandomState(55555)`` and
``RandomState(987654)``), 80 % of its attack rows for training and the other 20 % plus
"normal." rows of the same half (a fifth of the validation rows) for the top-20 % F1:

* Noiseless revision for both samplers (the authors' code; the paper's noise is
  sqrt(2 delta) for SGLD and sqrt(2 beta delta) for SGHMC). With the paper's noise the
  SGHMC samples are noise-dominated (median distance to the nearest training row about
  13 in min-max units, F1 bimodal over seeds: 0.949, 0.947, 0.770, 0.417 and 0.707 with
  the cosine schedule below); without it, F1 0.932, 0.935, 0.946, 0.943 (4 seeds).
* ``lr_schedule = "cosine"`` and 15 epochs instead of a constant rate for 30 epochs: with
  constant rates the last iterate kept swinging (F1 0.41-0.97 from epoch to epoch, with
  collapses lasting whole epochs); annealed, the last epochs move by less than 0.01 and
  15 epochs end where 30 do (one seed: SGLD 0.922 vs 0.905, SGHMC with the paper's noise
  0.935 vs 0.947), at half the cost. Final F1 over 6 seeds x splits, SGLD: 0.922-0.955 (mean 0.938).
* ``ema = 0.999``: the detector keeps the moving average of the potential's parameters;
  with the annealed rates it changes the final F1 by less than 0.01 either way.

Six further validation splits (``RandomState(1001)`` .. ``(1006)``, the same protocol,
one seed each) gave a wider spread than the two above: SGLD 0.669-0.954 (mean 0.883),
SGHMC 0.516-0.939 (mean 0.824); every low F1 came from part of the large "neptune." attack
class scored as anomalous. Three models trained together and scored by their mean
standardized energy (``NRFDetector(n_estimators=3)``, about three times the fit cost)
gave SGLD 0.942, 0.941, 0.934, 0.915 on the first four (single models there: 0.909,
0.934, 0.669, 0.954); the potential-control loss on both phases (``control="both"``):
SGLD 0.867-0.966 (mean 0.908), SGHMC 0.862-0.946 (mean 0.896), fewer failures but lower
peaks, so the preset keeps the paper's ``"data"``. ``n_estimators`` stays 1 (the paper's
single model, whose score is the energy itself). Three models for 10 epochs instead of 15
(a fit within 2 minutes on 2 cores) gave SGLD 0.900, 0.949, 0.930, 0.934, 0.950, 0.925 on
1001-1006 (mean 0.931); the preset keeps 15 epochs.

Known limitation: the generator does not reach the data. Revised samples stay far from
every training row (median nearest-row distance 12-18, while training rows lie in
[0, 1]^118 and most of their coordinates are 0), so the potential separates the data
from off-manifold samples and its ranking inside the data region comes from
extrapolation. That is not the whole story: clipping the revision to the data's box
(``clamp=(0, 1)``) brought the samples to a median distance of 2.3-2.5, and F1 fell
(split 55555, seeds 0 and 1: SGLD 0.807 and 0.504, SGHMC 0.738 and 0.419).

The ``mnist`` preset follows the authors' MNIST code where it departs from Table VIII:
RMSprop (decay 0.9, epsilon 1e-6) instead of Adam(0, 0.9), the noiseless revision, the
revised pixels clipped to [0, 1], the revision started from g(h) + 0.1 noise
(``sigma = 0.1``), hidden weight-norm scales fixed after the data-dependent init. On
held-out training images of digit 0 against 3,000 training images of other digits, the Table
VIII settings gave a validation AUROC that swung between 13 and 99 from epoch to epoch
(final parameter average 82.2); the authors' settings kept the last iterate mostly at
84-98 (dips to 15-62 in 6 of 50 epochs) and the parameter average ended at 96.1 (78-96
over the last 20 epochs). Cosine annealing, which steadies the ``tabular`` preset, made
this worse (the last iterate settled near 60, the average at 70): the rates stay constant.

The authors' MNIST code departs from Table VIII in more places, which the preset does not
follow: a plain ReLU potential (the table's leaky ReLU 0.2 is kept; pass
``energy=paper_potential("mnist", activation="relu", scale_trainable=False)`` for theirs),
Lasagne's RMSprop (epsilon 1e-6 inside the square root, i.e. a floor of about 1e-3 on the
denominator; torch's 1e-6 outside), h ~ U(0, 1)^100 instead of N(0, I), batch norm
without a gain in the generator, and the data-dependent init on 500 training images of
all digits (the preset uses 1,000 of the normal digit: the other digits are the
anomalies). On digit 3 (the same validation protocol, 50 epochs, one seed) the preset
ended at a validation AUROC of 85.5 (parameter average; 44-86 along the way); plain ReLU
with the epsilon floor stalled at 51.5 from epoch 25 on (average 51.8); adding the
uniform latent and the gain-free batch norm ended at 65.5. Three models trained together
(``n_estimators=3``, 1,700-1,800 s on one thread beside another fit) on the same
validation sets: digit 3, members 74.3, 58.0, 68.4 and their combined score 68.4; digit 8,
members 84.0, 81.6, 87.7, combined 90.6. The spread between seeds is wide (digit 3: 58.0 to
85.5 over four fits), and averaging three models narrows it without lifting the digit.

``tabular`` adapts its input and output widths to the number of features it is fitted
on; ``mnist`` needs 784 features (28 x 28 images, flattened or not).
"""

from __future__ import annotations

from dataclasses import dataclass

from nrf._checks import check_choice


@dataclass(frozen=True)
class DetectorPreset:
    """One column of Tables VII / VIII: networks (by :func:`~nrf.energies.paper_potential`
    and :func:`~nrf.generators.paper_generator` name) and training settings."""

    network: str
    event_shape: tuple[int, ...] | None  # None: (n_features,)
    batch_size: int
    epochs: int
    lr: float
    lr_generator: float
    betas: tuple[float, float]
    revision_steps: int
    alpha_p: float
    sgld_step: float
    sghmc_step: float
    sghmc_beta: float
    sgld_noise: float | str = 0.0
    sghmc_noise: float | str = "paper"
    ema: float | str | None = 0.999
    lr_schedule: str = "constant"
    potential_init: str = "data"
    optimizer: str = "adam"
    clamp: tuple[float, float] | None = None
    sigma: float = 0.0
    control: str = "data"


DETECTOR_PRESETS: dict[str, DetectorPreset] = {
    "tabular": DetectorPreset(
        network="kdd",
        event_shape=None,
        batch_size=1024,
        epochs=15,
        lr=1e-4,
        lr_generator=3e-4,
        betas=(0.5, 0.999),
        revision_steps=10,
        alpha_p=0.1,
        sgld_step=0.003,
        sghmc_step=0.03,
        sghmc_beta=0.3,
        sgld_noise=0.0,
        sghmc_noise=0.0,
        lr_schedule="cosine",
    ),
    "mnist": DetectorPreset(
        network="mnist",
        event_shape=(1, 28, 28),
        batch_size=100,
        epochs=50,
        lr=3e-3,
        lr_generator=1e-3,
        betas=(0.0, 0.9),
        revision_steps=20,
        alpha_p=1.0,
        sgld_step=0.001,
        sghmc_step=0.003,
        sghmc_beta=0.5,
        sgld_noise=0.0,
        sghmc_noise=0.0,
        optimizer="rmsprop",
        clamp=(0.0, 1.0),
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
