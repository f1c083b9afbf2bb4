"""Hamiltonian Monte Carlo with leapfrog integration and Metropolis-Hastings acceptance.

With momentum p ~ N(0, M) (M = ``mass`` I) and potential U = -log p(z), one transition
runs L leapfrog steps of size eps,

    p <- p + eps/2 * grad log p(z);   z <- z + eps * p / M;   p <- p + eps/2 * grad log p(z),

and accepts the end point with probability min(1, exp(H(z, p) - H(z', p'))), where
H = -log p(z) + |p|^2 / (2 M). Exact for exact targets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import torch

from nrf._checks import check_positive, check_positive_int
from nrf.samplers.base import (
    GRADIENT_ARGS,
    SAMPLERS,
    GradientSampler,
    MHInfo,
    MHState,
    as_position,
    metropolis_hastings,
    noise_like,
)
from nrf.samplers.schedules import Schedule
from nrf.targets.base import Position, Target

GradFn = Callable[[Position], tuple[torch.Tensor, Position]]


def leapfrog(
    position: Position,
    momentum: Position,
    grad: Position,
    grad_fn: GradFn,
    step_size: float,
    n_steps: int,
    mass: float = 1.0,
) -> tuple[Position, Position, torch.Tensor, Position]:
    """``n_steps`` leapfrog steps; returns position, momentum, log-density and gradient at the end."""
    p = tuple(torch.add(m, g, alpha=0.5 * step_size) for m, g in zip(momentum, grad, strict=True))
    z = position
    logp = torch.empty(0)
    for i in range(n_steps):
        z = tuple(torch.add(a, b, alpha=step_size / mass) for a, b in zip(z, p, strict=True))
        logp, grad = grad_fn(z)
        scale = step_size if i < n_steps - 1 else 0.5 * step_size
        p = tuple(torch.add(m, g, alpha=scale) for m, g in zip(p, grad, strict=True))
    return z, p, logp, grad


def kinetic_energy(momentum: Position, mass: float) -> torch.Tensor:
    """|p|^2 / (2 M) per chain."""
    total = torch.zeros(momentum[0].shape[0], dtype=momentum[0].dtype, device=momentum[0].device)
    for m in momentum:
        total = total + m.pow(2).flatten(1).sum(1)
    return total / (2.0 * mass)


HMCState = MHState
"""HMC chains: the position with the log-density and gradient cached at it (momenta are
drawn afresh every transition, so they are not state)."""


@SAMPLERS.register("hmc", converters=GRADIENT_ARGS)
class HMC(GradientSampler):
    """HMC with ``n_leapfrog`` leapfrog steps of size ``step_size`` per transition.

    >>> from nrf.energies import GaussianEnergy
    >>> from nrf.targets import BoltzmannTarget
    >>> target = BoltzmannTarget(GaussianEnergy(torch.zeros(2), torch.eye(2)))
    >>> sampler = HMC(step_size=0.3, n_leapfrog=5)
    >>> state, info = sampler.step(target, sampler.init(torch.zeros(10, 2)), torch.Generator().manual_seed(0))
    >>> info.accept_prob.shape
    torch.Size([10])
    """

    def __init__(self, step_size: float | Schedule, n_leapfrog: int = 10, *, mass: float = 1.0) -> None:
        super().__init__(step_size)
        self.n_leapfrog = check_positive_int("n_leapfrog", n_leapfrog)
        self.mass = check_positive("mass", mass)

    def hyperparameters(self) -> dict[str, Any]:
        return {**super().hyperparameters(), "n_leapfrog": self.n_leapfrog, "mass": self.mass}

    def init(self, z: torch.Tensor | Sequence[torch.Tensor]) -> HMCState:
        return HMCState(position=as_position(z))

    def step(
        self, target: Target, state: HMCState, generator: torch.Generator | None = None
    ) -> tuple[HMCState, MHInfo]:
        if not target.exact:
            raise ValueError("HMC needs an exact target; this target's gradient is stochastic")
        delta = self.step_size(state.step)
        moving = target.moves(state.position)
        if state.log_prob is None or state.grad is None:
            logp, grad = target.log_prob_and_grad(state.position)
        else:
            logp, grad = state.log_prob, state.grad
        momentum = tuple(
            noise_like(z, generator).mul_(self.mass**0.5) if m else torch.zeros_like(z)
            for z, m in zip(state.position, moving, strict=True)
        )
        frozen_grad = tuple(g if m else torch.zeros_like(g) for g, m in zip(grad, moving, strict=True))

        def grad_fn(z: Position) -> tuple[torch.Tensor, Position]:
            lp, g = target.log_prob_and_grad(target.project(z))
            return lp, tuple(gi if m else torch.zeros_like(gi) for gi, m in zip(g, moving, strict=True))

        z_new, p_new, logp_new, grad_new = leapfrog(
            state.position, momentum, frozen_grad, grad_fn, delta, self.n_leapfrog, self.mass
        )
        z_new = target.project(z_new)
        log_ratio = logp_new - logp + kinetic_energy(momentum, self.mass) - kinetic_energy(p_new, self.mass)
        current = replace(state, log_prob=logp, grad=grad)
        return metropolis_hastings(current, z_new, logp_new, grad_new, log_ratio, delta, generator)
