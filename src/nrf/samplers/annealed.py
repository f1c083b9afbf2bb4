"""Annealed Langevin dynamics: Langevin on p(x)^(1/T_t) with T_t cooling to 1.

The temperature follows a geometric schedule over the first ``n_anneal`` transitions,

    T_t = T_0^(1 - t / n_anneal)   for t = 0..n_anneal - 1,    T_t = 1 afterwards,

(T_0 = ``initial_temperature``; t counts transitions, ``state.step``), and each transition
is a Langevin step on pi_t(x) ∝ p(x)^(1/T_t) with step size delta_t T_t
(``scale_step_size``, the default: Song & Ermon 2019 likewise scale the step with the
noise level) or delta_t:

    x' = x + (delta_t T_t) (1 / T_t) grad log p(x) + sqrt(2 delta_t T_t) eta
       = x + delta_t grad log p(x) + sqrt(2 delta_t T_t) eta       (scaled),

so the hot start spreads the chains over the modes and the cooling settles them. After
the annealing the chains run plain Langevin at T = 1 (with ``mh=True``, MALA at every
step: each transition then leaves its pi_t invariant and the chains sample p exactly once
T = 1). The annealing itself is not exact: the weights of the modes the chains settle in
are those of pi_t when the barriers freeze them, close to p's when the modes are alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from nrf._checks import check_bool, check_positive, check_positive_int
from nrf.samplers.base import (
    SAMPLERS,
    GradientSampler,
    MHInfo,
    MHState,
    advance,
    as_position,
    noise_like,
    step_size_arg,
)
from nrf.samplers.langevin import langevin_update, mala_step
from nrf.samplers.schedules import Schedule
from nrf.targets.base import Target


def annealing_temperature(t: int, initial_temperature: float, n_anneal: int) -> float:
    """T_t = initial_temperature^(1 - t / n_anneal) for t < n_anneal, else 1.

    >>> [round(annealing_temperature(t, 100.0, 4), 3) for t in range(6)]
    [100.0, 31.623, 10.0, 3.162, 1.0, 1.0]
    """
    if t >= n_anneal:
        return 1.0
    return float(initial_temperature ** (1.0 - t / n_anneal))


AnnealedState = MHState
"""Annealed Langevin chains: the position, and with ``mh`` the untempered log-density and
gradient cached at it (recomputed after a restore)."""


@dataclass(frozen=True)
class AnnealedInfo(MHInfo):
    """An annealed Langevin transition: the temperature T_t it ran at (``step_size`` is the
    step actually taken, delta_t T_t when scaled; acceptance fields only with ``mh``)."""

    temperature: float = 1.0


@SAMPLERS.register("annealed-langevin", converters={"step_size": step_size_arg})
class AnnealedLangevin(GradientSampler):
    """Langevin dynamics on p^(1/T_t), T_t cooling geometrically from
    ``initial_temperature`` to 1 over ``n_anneal`` transitions, then plain Langevin.

    Parameters
    ----------
    step_size:
        delta_t at T = 1 (a number or a schedule).
    initial_temperature:
        T_0 >= 1.
    n_anneal:
        Number of annealing transitions (0: plain Langevin from the start).
    mh:
        Metropolis-Hastings correction of every transition (MALA on p^(1/T_t)).
    scale_step_size:
        Step delta_t T_t at temperature T_t (default) instead of delta_t.

    >>> from nrf.energies import GaussianEnergy
    >>> from nrf.samplers import run
    >>> from nrf.targets import BoltzmannTarget
    >>> target = BoltzmannTarget(GaussianEnergy(torch.zeros(2), torch.eye(2)))
    >>> sampler = AnnealedLangevin(0.05, initial_temperature=10.0, n_anneal=20)
    >>> g = torch.Generator().manual_seed(0)
    >>> state, _ = run(sampler, target, sampler.init(torch.zeros(8, 2)), 30, generator=g)
    >>> state.step
    30
    """

    def __init__(
        self,
        step_size: float | Schedule,
        initial_temperature: float = 10.0,
        n_anneal: int = 1000,
        *,
        mh: bool = False,
        scale_step_size: bool = True,
    ) -> None:
        super().__init__(step_size)
        self.initial_temperature = check_positive("initial_temperature", initial_temperature)
        if self.initial_temperature < 1.0:
            raise ValueError(f"initial_temperature must be >= 1, got {initial_temperature!r}")
        self.n_anneal = check_positive_int("n_anneal", n_anneal, allow_zero=True)
        self.mh = check_bool("mh", mh)
        self.scale_step_size = check_bool("scale_step_size", scale_step_size)

    def hyperparameters(self) -> dict[str, Any]:
        return {
            **super().hyperparameters(),
            "initial_temperature": self.initial_temperature,
            "n_anneal": self.n_anneal,
            "mh": self.mh,
            "scale_step_size": self.scale_step_size,
        }

    def temperature(self, t: int) -> float:
        """T_t of transition ``t``."""
        return annealing_temperature(t, self.initial_temperature, self.n_anneal)

    def init(self, z: torch.Tensor | Sequence[torch.Tensor]) -> AnnealedState:
        return AnnealedState(position=as_position(z))

    def step(
        self, target: Target, state: AnnealedState, generator: torch.Generator | None = None
    ) -> tuple[AnnealedState, AnnealedInfo]:
        if not isinstance(state, MHState):
            raise ValueError(
                f"AnnealedLangevin needs an MHState (create it with AnnealedLangevin.init), "
                f"got {type(state).__name__}"
            )
        temperature = self.temperature(state.step)
        beta = 1.0 / temperature
        delta = self.step_size(state.step) * (temperature if self.scale_step_size else 1.0)
        if self.mh:
            new, mh = mala_step(target, state, delta, generator, beta=beta)
            info = AnnealedInfo(
                step_size=delta,
                log_prob=mh.log_prob,
                accept_prob=mh.accept_prob,
                accepted=mh.accepted,
                temperature=temperature,
            )
            return new, info
        scale = math.sqrt(2.0 * delta)
        _, grad = target.log_prob_and_grad(state.position, generator=generator)
        moving = target.moves(state.position)
        position = tuple(
            langevin_update(z, g, delta * beta, noise_like(z, generator), scale) if m else z
            for z, g, m in zip(state.position, grad, moving, strict=True)
        )
        new_state = advance(state, position=target.project(position), log_prob=None, grad=None)
        return new_state, AnnealedInfo(step_size=delta, temperature=temperature)
