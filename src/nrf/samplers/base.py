"""The sampler contract shared by every sampler in nrf.

    state = sampler.init(z)                                   # z: a tensor or a tuple (x, h)
    state, info = sampler.step(target, state, generator=g)    # one transition of all chains
    state, trace = run(sampler, target, state, n_steps, ...)  # a plain loop

Samplers hold hyper-parameters only; they never own the model (the target does) and
never touch global random state (noise comes from ``generator``). The batch dimension of
the position tensors indexes independent chains.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from nrf.samplers.schedules import Schedule, as_schedule
from nrf.targets.base import Position, Target


@dataclass
class ChainState:
    """The state of a batch of chains.

    Attributes
    ----------
    position:
        Tuple of tensors (e.g. ``(x,)`` or ``(x, h)``), batch first.
    momentum:
        Velocities for SGHMC / HMC (same shapes as ``position``), else ``None``.
    step:
        Number of transitions made so far.
    log_prob, grad:
        Cached log-density and gradient at ``position`` (MALA and HMC reuse them).
    """

    position: Position
    momentum: Position | None = None
    step: int = 0
    log_prob: torch.Tensor | None = field(default=None, repr=False)
    grad: Position | None = field(default=None, repr=False)

    @property
    def x(self) -> torch.Tensor:
        """The first position tensor (the sample x)."""
        return self.position[0]

    def state_dict(self) -> dict[str, Any]:
        """Tensors and counters needed to continue the chains (no cached values)."""
        out: dict[str, Any] = {"step": self.step, "n_position": len(self.position)}
        for i, p in enumerate(self.position):
            out[f"position.{i}"] = p.detach().clone()
        if self.momentum is not None:
            for i, m in enumerate(self.momentum):
                out[f"momentum.{i}"] = m.detach().clone()
        return out

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> ChainState:
        """Rebuild a state written by :meth:`state_dict`."""
        try:
            n = int(state["n_position"])
            position = tuple(state[f"position.{i}"] for i in range(n))
            momentum = tuple(state[f"momentum.{i}"] for i in range(n)) if "momentum.0" in state else None
            return cls(position=position, momentum=momentum, step=int(state["step"]))
        except KeyError as exc:
            raise ValueError(f"chain state_dict is missing the entry {exc.args[0]!r}") from None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Replace this state's content in place with ``state``."""
        other = ChainState.from_state_dict(state)
        self.position, self.momentum, self.step = other.position, other.momentum, other.step
        self.log_prob, self.grad = None, None


@dataclass(frozen=True)
class StepInfo:
    """What one transition reports: the step size used and, for MH samplers, the
    acceptance probability and the accepted mask of each chain."""

    step_size: float
    log_prob: torch.Tensor | None = None
    accept_prob: torch.Tensor | None = None
    accepted: torch.Tensor | None = None


def as_position(z: torch.Tensor | Sequence[torch.Tensor]) -> Position:
    """A tensor or a sequence of tensors as a position tuple, with checks."""
    position = (z,) if isinstance(z, torch.Tensor) else tuple(z)
    if not position or not all(isinstance(p, torch.Tensor) for p in position):
        raise TypeError("z must be a tensor or a non-empty sequence of tensors")
    batch = position[0].shape[0] if position[0].dim() else None
    for i, p in enumerate(position):
        if p.dim() == 0 or p.shape[0] != batch:
            raise ValueError(
                f"z[{i}] must have the batch (chain) dimension {batch} first, got {tuple(p.shape)}"
            )
        if not p.is_floating_point():
            raise ValueError(f"z[{i}] must be a floating-point tensor, got {p.dtype}")
        if not bool(torch.isfinite(p).all()):
            raise ValueError(f"z[{i}] holds non-finite values")
    return tuple(p.detach() for p in position)


def check_no_nan(what: str, value: torch.Tensor) -> None:
    """Raise instead of letting a NaN decide an accept/reject (it signals a broken model)."""
    if bool(torch.isnan(value).any()):
        raise FloatingPointError(f"{what} is NaN for {int(torch.isnan(value).sum())} chain(s)")


def noise_like(t: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise with the shape, dtype and device of ``t``."""
    return torch.randn(t.shape, generator=generator, dtype=t.dtype, device=t.device)


class Sampler(ABC):
    """Base class: step-size schedule, ``init``, ``state_dict`` of hyper-parameters."""

    step_size: Schedule

    def __init__(self, step_size: float | Schedule) -> None:
        self.step_size = as_schedule(step_size)

    def init(self, z: torch.Tensor | Sequence[torch.Tensor]) -> ChainState:
        """Start chains at ``z`` (a tensor, or a tuple such as ``(x, h)``)."""
        return ChainState(position=as_position(z))

    @abstractmethod
    def step(
        self, target: Target, state: ChainState, generator: torch.Generator | None = None
    ) -> tuple[ChainState, StepInfo]:
        """One transition of every chain."""

    def hyperparameters(self) -> dict[str, Any]:
        """JSON-serializable hyper-parameters (for configs and checkpoints)."""
        return {"step_size": self.step_size.config()}

    def state_dict(self) -> dict[str, Any]:
        return {"class": type(self).__name__, **self.hyperparameters()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"


Callback = Callable[[int, ChainState, StepInfo], None]


def run(
    sampler: Sampler,
    target: Target,
    state: ChainState,
    n_steps: int,
    *,
    generator: torch.Generator | None = None,
    thin: int = 1,
    trajectory: bool = False,
    callback: Callback | None = None,
) -> tuple[ChainState, list[torch.Tensor] | None]:
    """Run ``n_steps`` transitions.

    With ``trajectory`` the x of every ``thin``-th state (after the transition) is kept
    and returned as a list (stack it for a tensor of shape ``(n_kept, batch, ...)``).
    ``callback(i, state, info)`` is called after every transition.
    """
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 0:
        raise ValueError(f"n_steps must be an int >= 0, got {n_steps!r}")
    if isinstance(thin, bool) or not isinstance(thin, int) or thin < 1:
        raise ValueError(f"thin must be an int >= 1, got {thin!r}")
    kept: list[torch.Tensor] | None = [] if trajectory else None
    for i in range(n_steps):
        state, info = sampler.step(target, state, generator)
        if kept is not None and (i + 1) % thin == 0:
            kept.append(state.x.clone())
        if callback is not None:
            callback(i, state, info)
    return state, kept


def metropolis_hastings(
    state: ChainState,
    proposal: Position,
    log_prob_new: torch.Tensor,
    grad_new: Position,
    log_ratio: torch.Tensor,
    step_size: float,
    generator: torch.Generator | None,
) -> tuple[ChainState, StepInfo]:
    """Accept each chain's proposal with probability min(1, exp(log_ratio)).

    ``state`` must carry the current log-density and gradient (they are kept for rejected
    chains and cached for the next step). A NaN log-ratio raises instead of deciding.
    """
    if state.log_prob is None or state.grad is None:
        raise ValueError("metropolis_hastings needs the current log-density and gradient in the state")
    check_no_nan("the Metropolis-Hastings log-ratio", log_ratio)
    accept_prob = log_ratio.exp().clamp(max=1.0)
    u = torch.rand(accept_prob.shape, generator=generator, dtype=accept_prob.dtype, device=accept_prob.device)
    accepted = u < accept_prob
    position = select(accepted, proposal, state.position)
    grad = select(accepted, grad_new, state.grad)
    log_prob = torch.where(accepted, log_prob_new, state.log_prob)
    info = StepInfo(step_size=step_size, log_prob=log_prob, accept_prob=accept_prob, accepted=accepted)
    return advance(state, position=position, log_prob=log_prob, grad=grad), info


def select(mask: torch.Tensor, a: Position, b: Position) -> Position:
    """Per chain: ``a`` where ``mask``, else ``b``."""
    return tuple(torch.where(mask.view(-1, *([1] * (x.dim() - 1))), x, y) for x, y in zip(a, b, strict=True))


def advance(state: ChainState, **changes: Any) -> ChainState:
    """A new state with ``changes`` and the step counter incremented."""
    return replace(state, step=state.step + 1, **changes)
