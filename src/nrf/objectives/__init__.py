"""Learning methods, one file each, driven by :class:`nrf.training.Trainer`."""

from nrf.objectives.base import Objective, StepContext
from nrf.objectives.contrastive_divergence import ContrastiveDivergence

__all__ = ["ContrastiveDivergence", "Objective", "StepContext"]
