"""Fully connected generators (Inclusive-NRF Tables VI, VII and VIII)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nrf._checks import check_choice, check_int_sequence
from nrf.generators.base import LatentGenerator
from nrf.nn import WeightNormLinear, make_activation

OUTPUT_NORMS = ("weight", "none")


class MLPGenerator(LatentGenerator):
    """MLP generator: h -> [Linear -> BatchNorm -> activation] x L -> Linear -> output activation.

    Parameters
    ----------
    latent_dim, event_shape:
        Sizes of h and of one sample x.
    hidden:
        Hidden widths.
    activation:
        Hidden nonlinearity; ``output_activation`` is applied to the last layer
        (``"linear"``, ``"sigmoid"`` for pixels in [0, 1], ``"tanh"`` ...).
    batch_norm:
        Batch normalization after every hidden linear layer (then the linear layer has
        no bias, which batch norm would cancel).
    output_norm:
        ``"weight"``: weight normalization on the output layer, as in the paper's
        generators; ``"none"``: a plain linear layer.
    sigma, learn_sigma:
        Output noise of q(x | h) (see :class:`LatentGenerator`).

    >>> gen = MLPGenerator(2, 2, hidden=(50, 50))
    >>> x, h = gen.sample(16, torch.Generator().manual_seed(0))
    >>> x.shape, h.shape
    (torch.Size([16, 2]), torch.Size([16, 2]))
    """

    def __init__(
        self,
        latent_dim: int,
        event_shape: int | Sequence[int],
        hidden: Sequence[int] = (50, 50),
        activation: str = "relu",
        *,
        output_activation: str = "linear",
        batch_norm: bool = True,
        output_norm: str = "weight",
        negative_slope: float = 0.2,
        sigma: float = 0.0,
        learn_sigma: bool = False,
    ) -> None:
        super().__init__(latent_dim, event_shape, sigma=sigma, learn_sigma=learn_sigma)
        widths = check_int_sequence("hidden", hidden)
        check_choice("output_norm", output_norm, OUTPUT_NORMS)
        layers: list[nn.Module] = []
        n_in = self.latent_dim
        for width in widths:
            layers.append(nn.Linear(n_in, width, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(width))
            layers.append(make_activation(activation, negative_slope))
            n_in = width
        n_out = 1
        for d in self.event_shape:
            n_out *= d
        layers.append(WeightNormLinear(n_in, n_out) if output_norm == "weight" else nn.Linear(n_in, n_out))
        layers.append(make_activation(output_activation, negative_slope))
        self.net = nn.Sequential(*layers)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if h.dim() != 2 or h.shape[1] != self.latent_dim:
            raise ValueError(f"h must have shape (batch, {self.latent_dim}), got {tuple(h.shape)}")
        return self.net(h).view(h.shape[0], *self.event_shape)
