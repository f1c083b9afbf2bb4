"""Conditioned densities for inpainting: only the free coordinates move."""

from __future__ import annotations

import torch

from nrf.targets.base import Position, Target


class MaskedTarget(Target):
    """p(x_free | x_observed) for a base target over ``(x,)``.

    ``mask`` is 1 (True) where x is free and 0 where it is observed; ``observed`` holds
    the known values (its free entries are ignored). Both broadcast against x. The
    gradient is zero on observed coordinates and :meth:`project` writes the observed
    values back, so a sampler never moves them.
    """

    def __init__(self, base: Target, mask: torch.Tensor, observed: torch.Tensor) -> None:
        if mask.shape != observed.shape[-mask.dim() :] and mask.shape != observed.shape:
            raise ValueError(
                f"mask shape {tuple(mask.shape)} does not broadcast to observed shape {tuple(observed.shape)}"
            )
        self.base = base
        self.exact = base.exact
        self.free = mask.to(torch.bool)
        self.observed = observed

    def log_prob(self, position: Position) -> torch.Tensor:
        return self.base.log_prob(self.project(position))

    def log_prob_and_grad(
        self, position: Position, *, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, Position]:
        value, grads = self.base.log_prob_and_grad(self.project(position), generator=generator)
        g = torch.where(self.free, grads[0], torch.zeros_like(grads[0]))
        return value, (g, *grads[1:])

    def project(self, position: Position) -> Position:
        x = position[0]
        return (torch.where(self.free, x, self.observed.to(x.dtype)), *position[1:])
