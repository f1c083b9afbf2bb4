"""Activation functions by name, as the papers' tables list them."""

from __future__ import annotations

from torch import nn

from nrf._checks import check_choice

ACTIVATIONS = ("leaky_relu", "relu", "tanh", "softplus", "sigmoid", "elu", "silu", "swish", "linear")


def make_activation(name: str, negative_slope: float = 0.2) -> nn.Module:
    """Return the activation module called ``name``.

    ``negative_slope`` applies to ``leaky_relu`` only (0.2 in the Inclusive-NRF tables).
    ``swish`` is ``silu``, x sigmoid(x) (the EBM tutorial's name); ``linear`` is the identity.

    >>> make_activation("leaky_relu")
    LeakyReLU(negative_slope=0.2)
    """
    check_choice("activation", name, ACTIVATIONS)
    if name == "leaky_relu":
        return nn.LeakyReLU(negative_slope)
    table: dict[str, type[nn.Module]] = {
        "relu": nn.ReLU,
        "tanh": nn.Tanh,
        "softplus": nn.Softplus,
        "sigmoid": nn.Sigmoid,
        "elu": nn.ELU,
        "silu": nn.SiLU,
        "swish": nn.SiLU,
        "linear": nn.Identity,
    }
    return table[name]()
