"""The energy contract: ``forward(x) -> Tensor[batch]``, lower = more probable."""

from __future__ import annotations

import math

import torch
from torch import nn


class Energy(nn.Module):
    """Base class of every energy in nrf.

    An energy maps a batch ``x`` of shape ``(batch, *event_shape)`` to a tensor of shape
    ``(batch,)``; the model density is p(x) = exp(-E(x)) / Z. The Inclusive-NRF paper writes
    the potential u(x) = -E(x); nrf converts at its boundaries and never mixes the two.

    Subclasses set ``event_shape`` and implement :meth:`forward`.
    """

    event_shape: tuple[int, ...]
    rows_independent: bool = False
    """True when each row's energy depends on that row only, in training mode too (no batch
    statistics): objectives may then score several batches in one call."""

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """Alias of ``self(x)``: the energy of each sample, shape ``(batch,)``."""
        out: torch.Tensor = self(x)
        return out

    def unnormalized_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """-E(x): the log-density up to the unknown constant -log Z."""
        return -self.energy(x)

    @property
    def event_numel(self) -> int:
        """Number of scalars in one sample."""
        return math.prod(self.event_shape)

    def _flat_batch(self, x: torch.Tensor) -> torch.Tensor:
        """Check ``x`` against ``event_shape`` and return it as ``(batch, event_numel)``.

        Accepts either ``(batch, *event_shape)`` or the flattened ``(batch, event_numel)``.
        """
        shape = tuple(x.shape)
        if shape[1:] == self.event_shape or (x.dim() == 2 and shape[1] == self.event_numel):
            return x.reshape(shape[0], self.event_numel)
        raise ValueError(
            f"{type(self).__name__} expects input of shape (batch, {', '.join(map(str, self.event_shape))})"
            f" or (batch, {self.event_numel}), got {shape}"
        )

    def _image_batch(self, x: torch.Tensor) -> torch.Tensor:
        """Check ``x`` against ``event_shape`` and return it as ``(batch, *event_shape)``."""
        shape = tuple(x.shape)
        if shape[1:] == self.event_shape:
            return x
        if x.dim() == 2 and shape[1] == self.event_numel:
            return x.reshape(shape[0], *self.event_shape)
        raise ValueError(
            f"{type(self).__name__} expects input of shape (batch, {', '.join(map(str, self.event_shape))})"
            f" or (batch, {self.event_numel}), got {shape}"
        )
