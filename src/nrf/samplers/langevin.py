"""Langevin dynamics / SGLD, with an optional Metropolis-Hastings correction (MALA).

Update (Inclusive-NRF Eq. 7, IGEBM Eq. 4), for every moving position tensor z:

    z' = z + delta_t * g(z) + s_t * eta,      eta ~ N(0, I),

where g is the (possibly stochastic, possibly clipped) gradient of the log-density and
s_t = sqrt(2 delta_t) by default. IGEBM and the Inclusive-NRF authors' code decouple the
noise: ``noise_scale`` fixes s_t (e.g. 0.005). ``grad_clip`` clips g element-wise to
[-c, c]; ``clamp`` projects z' onto a box (pixels in [0, 1]).

With ``noise_first=True`` a step adds the noise before it evaluates the gradient, as the EBM
tutorial's sampler (003_…, section 11.3) and IGEBM's code do:

    z_half = clamp(z + s_t eta),     z' = clamp(z_half + delta_t g(z_half)).

With ``mh=True`` the move is a proposal accepted with probability

    min(1, p(z') N(z; z' + delta g(z'), s^2) / (p(z) N(z'; z + delta g(z), s^2))),

the Metropolis-adjusted Langevin algorithm: exact for any step size, for exact targets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch

from nrf._checks import check_bool, check_box, check_positive
from nrf.samplers.base import (
    GRADIENT_ARGS,
    SAMPLERS,
    GradientSampler,
    GradientStepInfo,
    MHInfo,
    MHState,
    advance,
    as_position,
    metropolis_hastings,
    noise_like,
)
from nrf.samplers.schedules import Schedule
from nrf.targets.base import Position, Target


def langevin_update(
    z: torch.Tensor, grad: torch.Tensor, step_size: float, noise: torch.Tensor | None, noise_scale: float
) -> torch.Tensor:
    """z + step_size * grad + noise_scale * noise (pure; the noise is an argument, ``None``
    for a noiseless step)."""
    out = torch.add(z, grad, alpha=step_size)
    return out if noise is None else out.add_(noise, alpha=noise_scale)


def clip_gradient(grad: torch.Tensor, limit: float | None) -> torch.Tensor:
    """Element-wise clip to [-limit, limit] (no-op for ``None``)."""
    return grad if limit is None else grad.clamp(-limit, limit)


def gaussian_proposal_log_density(to: Position, mean: Position, scale: float) -> torch.Tensor:
    """sum over tensors of log N(to; mean, scale^2 I) up to the shared constant, per chain."""
    total = torch.zeros(to[0].shape[0], dtype=to[0].dtype, device=to[0].device)
    for a, m in zip(to, mean, strict=True):
        total = total - (a - m).pow(2).flatten(1).sum(1) / (2.0 * scale * scale)
    return total


LangevinState = MHState
"""Langevin chains: the position, and for MALA the log-density and gradient cached at it."""


def mala_step(
    target: Target,
    state: MHState,
    step_size: float,
    generator: torch.Generator | None,
    *,
    beta: float = 1.0,
    scale: float | None = None,
    grad_clip: float | None = None,
) -> tuple[MHState, MHInfo]:
    """One MALA transition on pi(x) ∝ p(x)^beta (p: ``target``; beta = 1: p itself):

        x' = x + step_size beta clip(grad log p(x)) + scale eta,   scale = sqrt(2 step_size),

    accepted with probability min(1, pi(x') q(x | x') / (pi(x) q(x' | x))). The state's
    ``log_prob`` / ``grad`` caches hold the *untempered* log p and its gradient (so a
    replica of parallel tempering keeps them when it changes temperature); they are
    computed when missing. The info's ``log_prob`` is untempered too. Only the tensors
    ``target.moves`` moves.
    """
    if not target.exact:
        raise ValueError("MALA needs an exact target; this target's gradient is stochastic")
    if state.log_prob is None or state.grad is None:
        logp, grad = target.log_prob_and_grad(state.position)
    else:
        logp, grad = state.log_prob, state.grad
    moving = target.moves(state.position)
    noise = math.sqrt(2.0 * step_size) if scale is None else scale
    drift = step_size * beta

    def mean(position: Position, g: Position) -> Position:
        return tuple(
            torch.add(z, clip_gradient(gz, grad_clip), alpha=drift) if m else z
            for z, gz, m in zip(position, g, moving, strict=True)
        )

    mean_fwd = mean(state.position, grad)
    proposal = target.project(
        tuple(
            mu.add(noise_like(mu, generator), alpha=noise) if m else mu
            for mu, m in zip(mean_fwd, moving, strict=True)
        )
    )
    logp_new, grad_new = target.log_prob_and_grad(proposal)
    mean_bwd = mean(proposal, grad_new)
    log_ratio = (
        beta * (logp_new - logp)
        + gaussian_proposal_log_density(state.position, mean_bwd, noise)
        - gaussian_proposal_log_density(proposal, mean_fwd, noise)
    )
    current = replace(state, log_prob=logp, grad=grad)
    return metropolis_hastings(current, proposal, logp_new, grad_new, log_ratio, step_size, generator)


@SAMPLERS.register("langevin", aliases=("sgld", "ld"), converters=GRADIENT_ARGS)
@SAMPLERS.register("mala", defaults={"mh": True}, converters=GRADIENT_ARGS)
class Langevin(GradientSampler):
    """Langevin dynamics / SGLD (``mh=False``) or MALA (``mh=True``).

    Parameters
    ----------
    step_size:
        delta, a positive number or a schedule such as
        :class:`~nrf.samplers.schedules.PolynomialDecay`.
    noise_scale:
        Noise standard deviation s; ``None`` (default) means sqrt(2 delta_t).
    grad_clip:
        Element-wise gradient clip c (``None``: no clipping).
    clamp:
        ``(low, high)`` box for the new position (first position tensor only).
    mh:
        Metropolis-Hastings correction (needs an exact target, no ``clamp``).
    noise_first:
        Add the noise before the gradient step (the tutorial's order; see the module
        docstring); not with ``mh``.

    Examples
    --------
    >>> from nrf.energies import GaussianEnergy
    >>> from nrf.samplers import run
    >>> from nrf.targets import BoltzmannTarget
    >>> target = BoltzmannTarget(GaussianEnergy(torch.zeros(2), torch.eye(2)))
    >>> sampler = Langevin(step_size=0.1)
    >>> state = sampler.init(torch.zeros(500, 2))
    >>> state, trace = run(sampler, target, state, 200, generator=torch.Generator().manual_seed(0))
    >>> state.x.shape
    torch.Size([500, 2])
    """

    def __init__(
        self,
        step_size: float | Schedule,
        *,
        noise_scale: float | None = None,
        grad_clip: float | None = None,
        clamp: tuple[float, float] | None = None,
        mh: bool = False,
        noise_first: bool = False,
    ) -> None:
        super().__init__(step_size)
        self.noise_scale = (
            None if noise_scale is None else check_positive("noise_scale", noise_scale, allow_zero=True)
        )
        self.grad_clip = None if grad_clip is None else check_positive("grad_clip", grad_clip)
        self.clamp = None if clamp is None else check_box("clamp", clamp)
        if mh and clamp is not None:
            raise ValueError("mh=True cannot be combined with clamp (the clamped proposal has no density)")
        if mh and noise_scale == 0:
            raise ValueError("mh=True needs noise_scale > 0")
        self.mh = mh
        self.noise_first = check_bool("noise_first", noise_first)
        if mh and noise_first:
            raise ValueError(
                "mh=True cannot be combined with noise_first=True (MALA's proposal order is fixed)"
            )

    def hyperparameters(self) -> dict[str, Any]:
        return {
            **super().hyperparameters(),
            "noise_scale": self.noise_scale,
            "grad_clip": self.grad_clip,
            "clamp": list(self.clamp) if self.clamp is not None else None,
            "mh": self.mh,
            "noise_first": self.noise_first,
        }

    def init(self, z: torch.Tensor | Sequence[torch.Tensor]) -> LangevinState:
        return LangevinState(position=as_position(z))

    def noise_std(self, delta: float) -> float:
        """The noise standard deviation s_t of a step of size ``delta``."""
        return math.sqrt(2.0 * delta) if self.noise_scale is None else self.noise_scale

    def step(
        self, target: Target, state: LangevinState, generator: torch.Generator | None = None
    ) -> tuple[LangevinState, GradientStepInfo | MHInfo]:
        delta = self.step_size(state.step)
        scale = self.noise_std(delta)
        moving = target.moves(state.position)
        if self.mh:
            if not target.exact:
                raise ValueError("mh=True needs an exact target; this target's gradient is stochastic")
            return mala_step(target, state, delta, generator, scale=scale, grad_clip=self.grad_clip)
        position = state.position
        if self.noise_first:
            noised = [
                torch.add(z, noise_like(z, generator), alpha=scale) if m and scale else z
                for z, m in zip(position, moving, strict=True)
            ]
            if self.clamp is not None:
                noised[0] = noised[0].clamp(*self.clamp)  # not in place: it may be the state's own tensor
            position = target.project(tuple(noised))
            scale = 0.0
        _, grad = target.log_prob_and_grad(position, generator=generator)
        new = []
        for z, g, m in zip(position, grad, moving, strict=True):
            if not m:
                new.append(z)
                continue
            z_new = langevin_update(
                z, clip_gradient(g, self.grad_clip), delta, noise_like(z, generator) if scale else None, scale
            )
            new.append(z_new)
        if self.clamp is not None:
            new[0] = new[0].clamp_(*self.clamp)
        return advance(state, position=target.project(tuple(new))), GradientStepInfo(step_size=delta)
