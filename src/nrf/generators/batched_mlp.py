"""Several independent MLP generators evaluated as one (one per seed; see :mod:`nrf.nn.batched`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from nrf._checks import check_choice, check_int_sequence, check_positive_int
from nrf.generators.base import LatentGenerator
from nrf.generators.mlp import MLPGenerator
from nrf.nn import make_activation
from nrf.nn.batched import BatchedBatchNorm1d, BatchedLinear, BatchedWeightNormLinear, copy_model_slice


class BatchedMLPGenerator(LatentGenerator):
    """``n_models`` independent :class:`~nrf.generators.MLPGenerator` networks.

    Latent rows ``s*b .. (s+1)*b - 1`` go through model ``s`` (batch norm uses each model's
    own rows), so ``sample(n)`` needs ``n`` divisible by ``n_models``.

    >>> gen = BatchedMLPGenerator(4, 2, 2, hidden=(8,))
    >>> gen.sample(4 * 10)[0].shape
    torch.Size([40, 2])
    """

    def __init__(
        self,
        n_models: int,
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
        if learn_sigma:
            raise ValueError(
                "learn_sigma is not supported for batched generators (one sigma would be shared)"
            )
        self.n_models = check_positive_int("n_models", n_models)
        self.hidden = check_int_sequence("hidden", hidden)
        check_choice("output_norm", output_norm, ("weight", "none"))
        self.options: dict[str, Any] = {
            "activation": activation,
            "output_activation": output_activation,
            "batch_norm": batch_norm,
            "output_norm": output_norm,
            "negative_slope": negative_slope,
        }
        layers: list[nn.Module] = []
        n_in = self.latent_dim
        for width in self.hidden:
            layers.append(BatchedLinear(n_models, n_in, width, bias=not batch_norm))
            if batch_norm:
                layers.append(BatchedBatchNorm1d(n_models, width))
            layers.append(make_activation(activation, negative_slope))
            n_in = width
        n_out = 1
        for d in self.event_shape:
            n_out *= d
        out = (
            BatchedWeightNormLinear(n_models, n_in, n_out)
            if output_norm == "weight"
            else BatchedLinear(n_models, n_in, n_out)
        )
        layers += [out, make_activation(output_activation, negative_slope)]
        self.net = nn.Sequential(*layers)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        n = h.shape[0]
        if h.dim() != 2 or h.shape[1] != self.latent_dim:
            raise ValueError(f"h must have shape (batch, {self.latent_dim}), got {tuple(h.shape)}")
        if n % self.n_models:
            raise ValueError(f"batch of {n} rows does not split into {self.n_models} models")
        out: torch.Tensor = self.net(h.view(self.n_models, n // self.n_models, -1))
        return out.reshape(n, *self.event_shape)

    @torch.no_grad()
    def model(self, index: int) -> MLPGenerator:
        """Model ``index`` as a standalone :class:`MLPGenerator` (a copy, same sigma)."""
        if not 0 <= index < self.n_models:
            raise ValueError(f"index must be in [0, {self.n_models}), got {index}")
        single = MLPGenerator(self.latent_dim, self.event_shape, self.hidden, sigma=float(self.sigma),
                              **self.options)  # fmt: skip
        copy_model_slice(self.net, single.net, index)
        return single
