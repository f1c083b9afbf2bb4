"""Parallel tempering (replica exchange) with MALA moves, for any exact target.

Each chain runs K replicas x_0..x_{K-1} at the inverse temperatures of a geometric ladder

    T_k = T_max^(k / (K - 1)),   beta_k = 1 / T_k,   k = 0..K-1   (T_0 = 1: the target),

replica k following pi_k(x) ∝ p(x)^beta_k. One transition

1. moves every replica by one MALA step on pi_k (:func:`~nrf.samplers.langevin.mala_step`): with step
   size delta_k = delta T_k (``scale_step_size``, the default: the same drift
   delta grad log p at every temperature, noise sqrt(2 delta T_k) growing with T_k) or
   delta_k = delta,

       x' = x + delta_k beta_k grad log p(x) + sqrt(2 delta_k) eta,

   accepted with the Metropolis-Hastings probability of MALA, so each replica's move
   leaves pi_k invariant;
2. proposes to exchange neighbouring replicas (k, k + 1), with E = -log p, accepted with
   probability

       min(1, exp((beta_k - beta_{k+1}) (E(x_k) - E(x_{k+1})))),

   the ratio pi_k(x_{k+1}) pi_{k+1}(x_k) / (pi_k(x_k) pi_{k+1}(x_{k+1})). With
   ``swap="alternating"`` every even pair (0-1, 2-3, ...) is proposed on even steps and
   every odd pair on odd steps (deterministic even-odd); with ``swap="random"`` each
   chain proposes one pair drawn uniformly.

Both moves keep the product of the pi_k invariant, so the beta = 1 replica (``state.x``)
samples the target exactly while the hot replicas carry it between modes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from nrf._checks import check_bool, check_choice, check_positive, check_positive_int
from nrf.samplers.base import (
    SAMPLERS,
    ChainState,
    GradientSampler,
    GradientStepInfo,
    MHState,
    advance,
    as_position,
    check_no_nan,
    select,
    step_size_arg,
)
from nrf.samplers.langevin import mala_step
from nrf.samplers.schedules import Schedule
from nrf.targets.base import Position, Target

_CACHE: dict[str, Any] = {"persistent": False}
SWAPS = ("alternating", "random")


def geometric_ladder(n_temperatures: int, max_temperature: float) -> tuple[float, ...]:
    """T_k = max_temperature^(k / (n_temperatures - 1)), k = 0..n-1 (T_0 = 1)."""
    n = check_positive_int("n_temperatures", n_temperatures)
    if n == 1:
        return (1.0,)
    return tuple(float(max_temperature ** (k / (n - 1))) for k in range(n))


@dataclass
class TemperingState(ChainState):
    """Parallel-tempering chains. ``position`` is the beta = 1 replica; ``replicas`` holds
    the others, one tensor per position tensor of shape ``(K - 1, batch, ...)`` (row k - 1
    is the replica at T_k), saved by :meth:`state_dict`. ``log_probs`` ``(K, batch)`` and
    ``grads`` cache the untempered log-density and gradient of every replica."""

    replicas: tuple[torch.Tensor, ...] = ()
    log_probs: torch.Tensor | None = field(default=None, repr=False, metadata=_CACHE)
    grads: tuple[torch.Tensor, ...] | None = field(default=None, repr=False, metadata=_CACHE)

    def replica(self, k: int) -> Position:
        """The position of replica k (0: the beta = 1 chain)."""
        return self.position if k == 0 else tuple(r[k - 1] for r in self.replicas)

    @property
    def all_replicas(self) -> Position:
        """Every replica, one tensor per position tensor of shape ``(K, batch, ...)``."""
        return tuple(
            torch.cat([p.unsqueeze(0), r]) for p, r in zip(self.position, self.replicas, strict=True)
        )


@dataclass(frozen=True)
class TemperingInfo(GradientStepInfo):
    """A parallel-tempering transition (``step_size`` is the base delta).

    ``move_accept_prob`` ``(K, batch)``: each replica's MALA acceptance probability;
    ``swap_attempted`` / ``swap_accepted`` ``(K - 1, batch)``: pair (k, k + 1) proposed /
    exchanged in each chain; ``swap_accept_prob`` ``(K - 1, batch)``: its acceptance
    probability (0 where not proposed).
    """

    temperatures: tuple[float, ...] = ()
    move_accept_prob: torch.Tensor | None = None
    swap_attempted: torch.Tensor | None = None
    swap_accepted: torch.Tensor | None = None
    swap_accept_prob: torch.Tensor | None = None

    @property
    def swap_rate(self) -> torch.Tensor:
        """Mean swap acceptance probability of each neighbour pair over the chains that
        proposed it, shape ``(K - 1,)`` (NaN for a pair nobody proposed)."""
        if self.swap_attempted is None or self.swap_accept_prob is None:
            return torch.empty(0)
        n = self.swap_attempted.sum(1)
        total = (self.swap_accept_prob * self.swap_attempted).sum(1)
        return torch.where(n > 0, total / n.clamp(min=1), torch.full_like(total, math.nan))


def _stack(parts: Sequence[Position]) -> Position:
    return tuple(torch.stack(ts) for ts in zip(*parts, strict=True))


@SAMPLERS.register("parallel-tempering", aliases=("pt",), converters={"step_size": step_size_arg})
class ParallelTempering(GradientSampler):
    """Replica exchange over a geometric ladder of ``n_temperatures`` temperatures from 1
    to ``max_temperature``, with one MALA move per replica and one round of neighbour swaps
    per transition.

    Parameters
    ----------
    step_size:
        MALA step delta at T = 1 (a number or a schedule); replica k uses delta T_k when
        ``scale_step_size`` (default), else delta.
    n_temperatures:
        K >= 2 replicas per chain.
    max_temperature:
        T_{K-1} > 1.
    swap:
        ``"alternating"`` (even pairs on even steps, odd pairs on odd steps) or
        ``"random"`` (one uniformly drawn pair per chain and step).
    scale_step_size:
        Whether the step grows with the temperature.

    >>> from nrf.energies import GaussianEnergy
    >>> from nrf.targets import BoltzmannTarget
    >>> target = BoltzmannTarget(GaussianEnergy(torch.zeros(2), torch.eye(2)))
    >>> sampler = ParallelTempering(0.1, n_temperatures=4, max_temperature=8.0)
    >>> state, info = sampler.step(target, sampler.init(torch.zeros(10, 2)), torch.Generator().manual_seed(0))
    >>> state.replicas[0].shape, info.swap_rate.shape
    (torch.Size([3, 10, 2]), torch.Size([3]))
    """

    def __init__(
        self,
        step_size: float | Schedule,
        n_temperatures: int = 8,
        max_temperature: float = 10.0,
        *,
        swap: str = "alternating",
        scale_step_size: bool = True,
    ) -> None:
        super().__init__(step_size)
        self.n_temperatures = check_positive_int("n_temperatures", n_temperatures)
        if self.n_temperatures < 2:
            raise ValueError(f"n_temperatures must be an int >= 2, got {n_temperatures!r}")
        self.max_temperature = check_positive("max_temperature", max_temperature)
        if self.max_temperature <= 1.0:
            raise ValueError(f"max_temperature must be > 1, got {max_temperature!r}")
        self.swap = check_choice("swap", swap, SWAPS)
        self.scale_step_size = check_bool("scale_step_size", scale_step_size)

    @property
    def temperatures(self) -> tuple[float, ...]:
        """The ladder T_0 = 1 < ... < T_{K-1} = ``max_temperature``."""
        return geometric_ladder(self.n_temperatures, self.max_temperature)

    def hyperparameters(self) -> dict[str, Any]:
        return {
            **super().hyperparameters(),
            "n_temperatures": self.n_temperatures,
            "max_temperature": self.max_temperature,
            "swap": self.swap,
            "scale_step_size": self.scale_step_size,
        }

    def init(self, z: torch.Tensor | Sequence[torch.Tensor]) -> TemperingState:
        """Every replica of a chain starts at that chain's ``z``."""
        position = as_position(z)
        k = self.n_temperatures - 1
        replicas = tuple(p.unsqueeze(0).expand(k, *p.shape).clone() for p in position)
        return TemperingState(position=position, replicas=replicas)

    def _check(self, state: Any) -> None:
        if not isinstance(state, TemperingState):
            raise ValueError(
                f"ParallelTempering needs a TemperingState (create it with ParallelTempering.init), "
                f"got {type(state).__name__}"
            )
        k = self.n_temperatures - 1
        if len(state.replicas) != len(state.position) or any(
            r.shape != (k, *p.shape) for r, p in zip(state.replicas, state.position, strict=False)
        ):
            shapes = [tuple(r.shape) for r in state.replicas]
            raise ValueError(
                f"state.replicas must hold one tensor of shape ({k}, batch, ...) per position tensor "
                f"for n_temperatures = {self.n_temperatures}, got {shapes}"
            )

    def step(
        self, target: Target, state: TemperingState, generator: torch.Generator | None = None
    ) -> tuple[TemperingState, TemperingInfo]:
        self._check(state)
        if not target.exact:
            raise ValueError("ParallelTempering needs an exact target; this target's gradient is stochastic")
        temps = self.temperatures
        betas = [1.0 / t for t in temps]
        delta = self.step_size(state.step)
        n_rep = self.n_temperatures
        positions = [state.replica(k) for k in range(n_rep)]
        if state.log_probs is None or state.grads is None:
            evaluated = [target.log_prob_and_grad(p) for p in positions]
            log_probs = [lp for lp, _ in evaluated]
            grads = [g for _, g in evaluated]
        else:
            log_probs = list(state.log_probs.unbind(0))
            grads = [tuple(g[k] for g in state.grads) for k in range(n_rep)]

        # 1. a MALA move of every replica on p^beta_k
        move_accept = []
        for k in range(n_rep):
            delta_k = delta * temps[k] if self.scale_step_size else delta
            current = MHState(position=positions[k], step=state.step, log_prob=log_probs[k], grad=grads[k])
            moved, moved_info = mala_step(target, current, delta_k, generator, beta=betas[k])
            positions[k] = moved.position
            assert moved.log_prob is not None
            assert moved.grad is not None
            log_probs[k], grads[k] = moved.log_prob, moved.grad
            assert moved_info.accept_prob is not None
            move_accept.append(moved_info.accept_prob)

        # 2. neighbour exchanges
        x = state.x
        batch = x.shape[0]
        opts: dict[str, Any] = {"device": x.device, "generator": generator}
        if self.swap == "random":
            pair = torch.randint(0, n_rep - 1, (batch,), **opts)
            attempted = torch.stack([pair == j for j in range(n_rep - 1)])
        else:
            parity = torch.arange(n_rep - 1, device=x.device) % 2 == state.step % 2
            attempted = parity[:, None].expand(n_rep - 1, batch)
        accept_prob = torch.zeros(n_rep - 1, batch, dtype=log_probs[0].dtype, device=x.device)
        accepted = torch.zeros(n_rep - 1, batch, dtype=torch.bool, device=x.device)
        for j in range(n_rep - 1):  # the pairs proposed together never share a replica
            log_ratio = (betas[j] - betas[j + 1]) * (log_probs[j + 1] - log_probs[j])
            check_no_nan("the replica-exchange log-ratio", log_ratio)
            prob = log_ratio.exp().clamp(max=1.0)
            u = torch.rand(batch, dtype=prob.dtype, **opts)
            swap = attempted[j] & (u < prob)
            accept_prob[j] = torch.where(attempted[j], prob, torch.zeros_like(prob))
            accepted[j] = swap
            a, b = positions[j], positions[j + 1]
            positions[j], positions[j + 1] = select(swap, b, a), select(swap, a, b)
            ga, gb = grads[j], grads[j + 1]
            grads[j], grads[j + 1] = select(swap, gb, ga), select(swap, ga, gb)
            la, lb = log_probs[j], log_probs[j + 1]
            log_probs[j], log_probs[j + 1] = torch.where(swap, lb, la), torch.where(swap, la, lb)

        new = advance(
            state,
            position=positions[0],
            replicas=_stack(positions[1:]),
            log_probs=torch.stack(log_probs),
            grads=_stack(grads),
        )
        info = TemperingInfo(
            step_size=delta,
            temperatures=temps,
            move_accept_prob=torch.stack(move_accept),
            swap_attempted=attempted,
            swap_accepted=accepted,
            swap_accept_prob=accept_prob,
        )
        return new, info
