"""Learning methods, one file each, driven by :class:`nrf.training.Trainer`."""

from nrf.objectives.base import Objective, StepContext
from nrf.objectives.contrastive_divergence import ContrastiveDivergence
from nrf.objectives.exclusive_nrf import ExclusiveNRF
from nrf.objectives.gan import GAN
from nrf.objectives.inclusive_nrf import InclusiveNRF
from nrf.objectives.wgan_gp import WGANGP

__all__ = [
    "GAN",
    "WGANGP",
    "ContrastiveDivergence",
    "ExclusiveNRF",
    "InclusiveNRF",
    "Objective",
    "StepContext",
]
