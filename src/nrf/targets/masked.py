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
        self, position: Position, *, step: int = 0, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, Position]:
        value, grads = self.base.log_prob_and_grad(self.project(position), step=step, generator=generator)
        g = torch.where(self.free, grads[0], torch.zeros_like(grads[0]))
        return value, (g, *grads[1:])

    def project(self, position: Position) -> Position:
        x = position[0]
        obs = self.observed.to(x.dtype)
        if obs.dim() == x.dim() and obs.shape[0] not in (1, x.shape[0]) and x.shape[0] % obs.shape[0] == 0:
            # Several candidates per chain stacked along the batch (e.g. MPPI): tile the observations.
            obs = obs.repeat(x.shape[0] // obs.shape[0], *([1] * (obs.dim() - 1)))
        return (torch.where(self.free, x, obs), *position[1:])
