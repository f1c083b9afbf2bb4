"""Targets: the densities samplers follow (Boltzmann, tempered, product of experts,
masked for inpainting, the visible marginal of an RBM, and the augmented p(x) q(h | x) of Inclusive-NRF)."""

from nrf.targets.augmented import AugmentedTarget
from nrf.targets.base import Position, Target
from nrf.targets.boltzmann import BoltzmannTarget, ProductOfExperts, tempered
from nrf.targets.masked import MaskedTarget
from nrf.targets.rbm import RBMTarget

__all__ = [
    "AugmentedTarget",
    "BoltzmannTarget",
    "MaskedTarget",
    "Position",
    "ProductOfExperts",
    "RBMTarget",
    "Target",
    "tempered",
]
