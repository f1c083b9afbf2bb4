"""Learning methods, one file each, driven by :class:`nrf.training.Trainer`."""

from nrf.objectives.base import Objective, StepContext
from nrf.objectives.contrastive_divergence import ContrastiveDivergence
from nrf.objectives.inclusive_nrf import InclusiveNRF

__all__ = ["ContrastiveDivergence", "InclusiveNRF", "Objective", "StepContext"]
