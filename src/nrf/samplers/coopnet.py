"""The CoopNet sampler (Xie et al.), the baseline of Inclusive-NRF Fig. 2.

Over the augmented state (x, h), one transition runs Lx Langevin steps on x targeting
p(x) (h fixed), then Lh Langevin steps on h targeting q(h | x) (x fixed):

    x <- x + delta_t * d/dx log p(x) + sqrt(2 delta_t) eta          (Lx times)
    h <- h + delta_t * d/dh log q(h, x) + sqrt(2 delta_t) eta       (Lh times)

One CoopNet transition therefore costs max(Lx, Lh) steps of the other samplers; its step
counter advances by that much, so step-size schedules and plots line up.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import torch

from nrf._checks import check_positive_int
from nrf.samplers.base import (
    GRADIENT_ARGS,
    SAMPLERS,
    ChainState,
    GradientSampler,
    GradientStepInfo,
    noise_like,
)
from nrf.samplers.langevin import langevin_update
from nrf.samplers.schedules import Schedule
from nrf.targets.augmented import AugmentedTarget
from nrf.targets.base import Target


@SAMPLERS.register("coopnet", converters=GRADIENT_ARGS)
class CoopNet(GradientSampler):
    """Alternating Langevin on x (Lx steps) and on h (Lh steps) for an :class:`AugmentedTarget`.

    >>> from nrf.energies import GaussianEnergy
    >>> from nrf.generators import MLPGenerator
    >>> gen = MLPGenerator(2, 2, hidden=(4,), batch_norm=False, sigma=0.5)
    >>> target = AugmentedTarget(GaussianEnergy(torch.zeros(2), torch.eye(2)), gen)
    >>> sampler = CoopNet(0.01, n_x=20, n_h=20)
    >>> state, _ = sampler.step(target, sampler.init(gen.sample(8)), torch.Generator().manual_seed(0))
    >>> state.step, state.position[1].shape
    (20, torch.Size([8, 2]))
    """

    def __init__(self, step_size: float | Schedule, n_x: int = 20, n_h: int = 20) -> None:
        super().__init__(step_size)
        self.n_x = check_positive_int("n_x", n_x)
        self.n_h = check_positive_int("n_h", n_h)

    def hyperparameters(self) -> dict[str, Any]:
        return {**super().hyperparameters(), "n_x": self.n_x, "n_h": self.n_h}

    def step(
        self, target: Target, state: ChainState, generator: torch.Generator | None = None
    ) -> tuple[ChainState, GradientStepInfo]:
        if not isinstance(target, AugmentedTarget):
            raise TypeError(f"CoopNet samples an AugmentedTarget, got {type(target).__name__}")
        x, h = state.position
        t0 = state.step
        for i in range(self.n_x):
            delta = self.step_size(t0 + i)
            x = langevin_update(
                x, target.model_grad(x), delta, noise_like(x, generator), math.sqrt(2 * delta)
            )
        for i in range(self.n_h):
            delta = self.step_size(t0 + i)
            h = langevin_update(
                h, target.latent_grad(x, h), delta, noise_like(h, generator), math.sqrt(2 * delta)
            )
        new = replace(state, position=(x, h), step=t0 + max(self.n_x, self.n_h))
        return new, GradientStepInfo(step_size=self.step_size(t0))
