"""Network building blocks shared by energies and generators."""

from nrf.nn.activations import ACTIVATIONS, make_activation
from nrf.nn.modes import evaluation_mode
from nrf.nn.weight_norm import (
    WeightNormConv2d,
    WeightNormConvTranspose2d,
    WeightNormLinear,
    data_dependent_init,
    frozen_weights,
    weight_norm_layers,
)

__all__ = [
    "ACTIVATIONS",
    "WeightNormConv2d",
    "WeightNormConvTranspose2d",
    "WeightNormLinear",
    "data_dependent_init",
    "evaluation_mode",
    "frozen_weights",
    "make_activation",
    "weight_norm_layers",
]
