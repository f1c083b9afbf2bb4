"""Targets: the densities samplers follow (Boltzmann, tempered, product of experts,
masked for inpainting, and the augmented p(x) q(h | x) of Inclusive-NRF)."""

from nrf.targets.augmented import AugmentedTarget
from nrf.targets.base import Position, Target
from nrf.targets.boltzmann import BoltzmannTarget, ProductOfExperts, tempered
from nrf.targets.masked import MaskedTarget

__all__ = [
    "AugmentedTarget",
    "BoltzmannTarget",
    "MaskedTarget",
    "Position",
    "ProductOfExperts",
    "Target",
    "tempered",
]
