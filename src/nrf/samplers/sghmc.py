"""Stochastic gradient Hamiltonian Monte Carlo (Inclusive-NRF Eq. 8).

Starting from v = 0, for every moving position tensor z:

    v' = (1 - beta) v + delta_t g(z) + sqrt(2 beta delta_t) eta,    eta ~ N(0, I)
    z' = z + v'

``beta`` in (0, 1] is the friction (momentum decay); beta = 1 recovers Langevin with the
noise sqrt(2 delta). ``noise_scale`` replaces sqrt(2 beta delta) (the authors' decoupled
noise); ``grad_clip`` and ``clamp`` act as in :class:`~nrf.samplers.langevin.Langevin`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from nrf._checks import check_box, check_positive
from nrf.samplers.base import (
    GRADIENT_ARGS,
    SAMPLERS,
    ChainState,
    GradientSampler,
    GradientStepInfo,
    advance,
    as_position,
    noise_like,
)
from nrf.samplers.langevin import clip_gradient
from nrf.samplers.schedules import Schedule
from nrf.targets.base import Target


def sghmc_update(
    z: torch.Tensor,
    v: torch.Tensor,
    grad: torch.Tensor,
    step_size: float,
    beta: float,
    noise: torch.Tensor | None,
    noise_scale: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """v' = (1 - beta) v + step_size grad + noise_scale noise; z' = z + v' (pure; ``noise``
    ``None`` for a noiseless step)."""
    v_new = torch.mul(v, 1.0 - beta).add_(grad, alpha=step_size)
    if noise is not None:
        v_new.add_(noise, alpha=noise_scale)
    return z + v_new, v_new


@dataclass
class SGHMCState(ChainState):
    """SGHMC chains: the position and the velocity v of every position tensor (zeros at the
    start; frozen tensors keep theirs)."""

    momentum: tuple[torch.Tensor, ...] = ()


@SAMPLERS.register("sghmc", converters=GRADIENT_ARGS)
class SGHMC(GradientSampler):
    """SGHMC with friction ``beta`` (Inclusive-NRF Eq. 8).

    >>> from nrf.energies import GaussianEnergy
    >>> from nrf.targets import BoltzmannTarget
    >>> target = BoltzmannTarget(GaussianEnergy(torch.zeros(2), torch.eye(2)))
    >>> sampler = SGHMC(step_size=0.01, beta=0.1)
    >>> state = sampler.init(torch.zeros(100, 2))
    >>> state, _ = sampler.step(target, state, torch.Generator().manual_seed(0))
    >>> state.momentum[0].shape
    torch.Size([100, 2])
    """

    def __init__(
        self,
        step_size: float | Schedule,
        beta: float = 0.1,
        *,
        noise_scale: float | None = None,
        grad_clip: float | None = None,
        clamp: tuple[float, float] | None = None,
    ) -> None:
        super().__init__(step_size)
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0.0 < beta <= 1.0:
            raise ValueError(f"beta must be in (0, 1], got {beta!r}")
        self.beta = float(beta)
        self.noise_scale = (
            None if noise_scale is None else check_positive("noise_scale", noise_scale, allow_zero=True)
        )
        self.grad_clip = None if grad_clip is None else check_positive("grad_clip", grad_clip)
        self.clamp = None if clamp is None else check_box("clamp", clamp)

    def hyperparameters(self) -> dict[str, Any]:
        return {
            **super().hyperparameters(),
            "beta": self.beta,
            "noise_scale": self.noise_scale,
            "grad_clip": self.grad_clip,
            "clamp": list(self.clamp) if self.clamp is not None else None,
        }

    def init(self, z: torch.Tensor | Sequence[torch.Tensor]) -> SGHMCState:
        position = as_position(z)
        return SGHMCState(position=position, momentum=tuple(torch.zeros_like(p) for p in position))

    def step(
        self, target: Target, state: SGHMCState, generator: torch.Generator | None = None
    ) -> tuple[SGHMCState, GradientStepInfo]:
        if not isinstance(state, SGHMCState) or len(state.momentum) != len(state.position):
            raise ValueError("state has no momentum: create it with SGHMC.init")
        delta = self.step_size(state.step)
        scale = math.sqrt(2.0 * self.beta * delta) if self.noise_scale is None else self.noise_scale
        moving = target.moves(state.position)
        _, grad = target.log_prob_and_grad(state.position, generator=generator)
        position, momentum = [], []
        for z, v, g, m in zip(state.position, state.momentum, grad, moving, strict=True):
            if not m:
                position.append(z)
                momentum.append(v)
                continue
            z_new, v_new = sghmc_update(
                z, v, clip_gradient(g, self.grad_clip), delta, self.beta,
                noise_like(z, generator) if scale else None, scale,
            )  # fmt: skip
            position.append(z_new)
            momentum.append(v_new)
        if self.clamp is not None:
            position[0] = position[0].clamp_(*self.clamp)
        new_state = advance(state, position=target.project(tuple(position)), momentum=tuple(momentum))
        return new_state, GradientStepInfo(step_size=delta)
