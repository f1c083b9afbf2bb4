"""Several independent MLP energies evaluated as one (one per seed), for training many seeds
at the cost of little more than one on a CPU (see :mod:`nrf.nn.batched`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nrf._checks import check_choice, check_int_sequence, check_positive, check_positive_int
from nrf.energies.base import Energy
from nrf.energies.mlp import MLPEnergy
from nrf.nn import make_activation
from nrf.nn.batched import BatchedLinear, BatchedWeightNormLinear, copy_model_slice


class BatchedMLPEnergy(Energy):
    """``n_models`` independent :class:`~nrf.energies.MLPEnergy` networks.

    The input is one flat batch of ``n_models * b`` samples; rows ``s*b .. (s+1)*b - 1``
    belong to model ``s``. :meth:`model` extracts one model as a plain ``MLPEnergy``.

    >>> energy = BatchedMLPEnergy(3, (2,), hidden=(8,))
    >>> energy(torch.randn(3 * 5, 2)).shape
    torch.Size([15])
    """

    def __init__(
        self,
        n_models: int,
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
        self.n_models = check_positive_int("n_models", n_models)
        shape = (event_shape,) if isinstance(event_shape, int) else tuple(event_shape)
        self.event_shape = check_int_sequence("event_shape", shape, allow_empty=False)
        self.hidden = check_int_sequence("hidden", hidden)
        self.activation = activation
        self.negative_slope = check_positive("negative_slope", negative_slope, allow_zero=True)
        self.norm = check_choice("norm", norm, ("weight", "none"))
        self.scale_trainable = scale_trainable
        self.init = check_choice("init", init, ("data", "unit"))
        sizes = (self.event_numel, *self.hidden, 1)
        layers: list[nn.Module] = []
        for i in range(len(sizes) - 1):
            last = i == len(sizes) - 2
            if norm == "weight":
                layers.append(BatchedWeightNormLinear(n_models, sizes[i], sizes[i + 1],
                                                      scale_trainable=scale_trainable or last,
                                                      data_init=init == "data"))  # fmt: skip
            else:
                layers.append(BatchedLinear(n_models, sizes[i], sizes[i + 1]))
            if not last:
                layers.append(make_activation(activation, negative_slope))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = self._flat_batch(x)
        n = flat.shape[0]
        if n % self.n_models:
            raise ValueError(f"batch of {n} rows does not split into {self.n_models} models")
        out: torch.Tensor = self.net(flat.view(self.n_models, n // self.n_models, -1))
        return out.reshape(n)

    @torch.no_grad()
    def model(self, index: int) -> MLPEnergy:
        """Model ``index`` as a standalone :class:`MLPEnergy` (a copy)."""
        if not 0 <= index < self.n_models:
            raise ValueError(f"index must be in [0, {self.n_models}), got {index}")
        single = MLPEnergy(self.event_shape, self.hidden, self.activation, negative_slope=self.negative_slope,
                           norm=self.norm, scale_trainable=self.scale_trainable, init=self.init)  # fmt: skip
        copy_model_slice(self.net, single.net, index)
        return single
