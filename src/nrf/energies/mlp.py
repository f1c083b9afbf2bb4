"""Fully connected potentials (Inclusive-NRF Tables VI, VII and VIII)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from nrf._checks import check_choice, check_int_sequence, check_positive
from nrf.energies.base import Energy
from nrf.nn import WeightNormLinear, make_activation

NORMS = ("weight", "spectral", "none")


class MLPEnergy(Energy):
    """Multi-layer perceptron energy E(x) = f_L(... a(f_1(x)) ...), one output unit.

    Parameters
    ----------
    event_shape:
        Shape of one sample, e.g. ``(2,)`` or ``(1, 28, 28)``; inputs may also be given
        flattened.
    hidden:
        Widths of the hidden layers.
    activation:
        Hidden nonlinearity (see :data:`nrf.nn.ACTIVATIONS`).
    negative_slope:
        Slope of the leaky ReLU (0.2 in the paper's tables).
    norm:
        ``"weight"`` (weight normalization with data-dependent init, as in the paper),
        ``"spectral"`` or ``"none"``.
    scale_trainable:
        With weight norm, whether the hidden layers' scales g are trained (the paper) or
        fixed after the data-dependent init (the authors' toy code).
    init:
        With weight norm, ``"data"`` (data-dependent initialization, the paper) or
        ``"unit"`` (none: g = 1 and b = 0, unit-norm weight rows; the authors' KDDCUP99
        code, which also fixes the hidden scales: ``scale_trainable=False``).

    Examples
    --------
    >>> from nrf.nn import data_dependent_init
    >>> energy = MLPEnergy((2,), hidden=(100, 100))
    >>> _ = data_dependent_init(energy, torch.randn(256, 2))
    >>> energy(torch.randn(8, 2)).shape
    torch.Size([8])
    """

    def __init__(
        self,
        event_shape: int | Sequence[int],
        hidden: Sequence[int] = (100, 100),
        activation: str = "leaky_relu",
        *,
        negative_slope: float = 0.2,
        norm: str = "weight",
        scale_trainable: bool = True,
        init: str = "data",
    ) -> None:
        super().__init__()
        check_choice("init", init, ("data", "unit"))
        shape = (event_shape,) if isinstance(event_shape, int) else tuple(event_shape)
        self.event_shape = check_int_sequence("event_shape", shape, allow_empty=False)
        widths = check_int_sequence("hidden", hidden)
        check_choice("norm", norm, NORMS)
        check_positive("negative_slope", negative_slope, allow_zero=True)
        sizes = (self.event_numel, *widths, 1)
        layers: list[nn.Module] = []
        for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
            last = i == len(sizes) - 2
            layers.append(_dense(n_in, n_out, norm, scale_trainable or last, init == "data"))
            if not last:
                layers.append(make_activation(activation, negative_slope))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self._flat_batch(x)).squeeze(-1)


def _dense(n_in: int, n_out: int, norm: str, scale_trainable: bool, data_init: bool = True) -> nn.Module:
    if norm == "weight":
        return WeightNormLinear(n_in, n_out, scale_trainable=scale_trainable, data_init=data_init)
    if norm == "spectral":
        return _spectral_norm(nn.Linear(n_in, n_out))
    return nn.Linear(n_in, n_out)
