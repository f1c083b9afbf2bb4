"""Auxiliary generators q(x, h) = N(h; 0, I) N(x; g(h), sigma^2 I)."""

from nrf.generators.base import LatentGenerator
from nrf.generators.batched_mlp import BatchedMLPGenerator
from nrf.generators.conv import DeconvGenerator, SNGANGenerator, SNGANResNetGenerator
from nrf.generators.mlp import MLPGenerator
from nrf.generators.presets import GENERATORS, paper_generator

__all__ = [
    "GENERATORS",
    "BatchedMLPGenerator",
    "DeconvGenerator",
    "LatentGenerator",
    "MLPGenerator",
    "SNGANGenerator",
    "SNGANResNetGenerator",
    "paper_generator",
]
