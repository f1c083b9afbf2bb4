"""The sampler contract shared by every sampler in nrf.

    state = sampler.init(z)                                   # z: a tensor or a tuple (x, h)
    state, info = sampler.step(target, state, generator=g)    # one transition of all chains
    state, trace = run(sampler, target, state, n_steps, ...)  # a plain loop

Samplers hold hyper-parameters only; they never own the model (the target does) and
never touch global random state (noise comes from ``generator``). The batch dimension of
the position tensors indexes independent chains. Each sampler returns its own state type
(a :class:`ChainState` subclass) and info type (a :class:`StepInfo` subclass), as
blackjax's ``HMCState`` / ``HMCInfo``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeVar

import torch

from nrf._checks import check_box
from nrf.registry import ConfigError, Configurable, Registry
from nrf.samplers.schedules import SCHEDULES, Schedule, as_schedule
from nrf.targets.base import Position, Target

S = TypeVar("S", bound="ChainState")


@dataclass
class ChainState:
    """The state every sampler keeps for a batch of chains: the position and the number of
    transitions made. Samplers that keep more (momentum, cached gradients) extend it with
    their own state type (:class:`~nrf.samplers.sghmc.SGHMCState`, ...).

    Attributes
    ----------
    position:
        Tuple of tensors (e.g. ``(x,)`` or ``(x, h)``), batch first.
    step:
        Number of transitions made so far.
    """

    position: Position
    step: int = 0

    @property
    def x(self) -> torch.Tensor:
        """The first position tensor (the sample x)."""
        return self.position[0]

    def state_dict(self) -> dict[str, Any]:
        """Tensors and counters needed to continue the chains (cached values excluded): the
        position, the step and every tuple-of-tensors field of the state type."""
        out: dict[str, Any] = {
            "type": type(self).__name__,
            "step": self.step,
            "n_position": len(self.position),
        }
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "step" or not f.metadata.get("persistent", True) or value is None:
                continue
            for i, t in enumerate(value):
                out[f"{f.name}.{i}"] = t.detach().clone()
        return out

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> ChainState:
        """Rebuild a state written by :meth:`state_dict` (as this state type)."""
        try:
            n = int(state["n_position"])
            values: dict[str, Any] = {"step": int(state["step"])}
            for f in fields(cls):
                if f.name == "step" or not f.metadata.get("persistent", True):
                    continue
                if f.name == "position" or f"{f.name}.0" in state:
                    values[f.name] = tuple(state[f"{f.name}.{i}"] for i in range(n))
            return cls(**values)
        except KeyError as exc:
            raise ValueError(f"chain state_dict is missing the entry {exc.args[0]!r}") from None
        except TypeError as exc:
            raise ValueError(f"chain state_dict does not describe a {cls.__name__}: {exc}") from None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Replace this state's content in place with ``state``."""
        other = type(self).from_state_dict(state)
        for f in fields(self):
            setattr(self, f.name, getattr(other, f.name))


_CACHE: dict[str, Any] = {"persistent": False}  # recomputed after a restore, not saved


@dataclass
class MHState(ChainState):
    """The state of a Metropolis-Hastings sampler (MALA, HMC): the position plus the
    log-density and gradient cached at it (recomputed after a restore)."""

    log_prob: torch.Tensor | None = field(default=None, repr=False, metadata=_CACHE)
    grad: Position | None = field(default=None, repr=False, metadata=_CACHE)


@dataclass(frozen=True)
class StepInfo:
    """What every transition reports (nothing beyond the new state for samplers without
    tunable dynamics, such as block Gibbs); samplers extend it."""


@dataclass(frozen=True)
class GradientStepInfo(StepInfo):
    """A gradient sampler's transition: the step size it used."""

    step_size: float


@dataclass(frozen=True)
class MHInfo(GradientStepInfo):
    """A Metropolis-Hastings transition: the log-density after the transition and each
    chain's acceptance probability and accepted flag."""

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


SAMPLERS: Registry[Sampler] = Registry("sampler")
"""Every sampler by name (``[sampler]`` tables of configs, detector presets)."""


def step_size_arg(value: Any, key: str) -> Schedule:
    """A spec's ``step_size``: a positive number or a schedule table (``{name = "polynomial", ...}``)."""
    if isinstance(value, Mapping):
        built: Schedule = SCHEDULES.build(value, key=key)
        return built
    try:
        return as_schedule(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{key}: {exc}") from None


def box_arg(value: Any, key: str) -> tuple[float, float] | None:
    """A spec's ``clamp``: ``[low, high]`` with finite low < high."""
    if value is None:
        return None
    try:
        return check_box(key, value)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


GRADIENT_ARGS = {"step_size": step_size_arg, "clamp": box_arg}


class Sampler(Configurable, ABC):
    """Base class: ``init`` and ``step``, ``to_config`` / ``from_config`` of hyper-parameters.

    A sampler defines its own state type (``init`` returns it) and info type (``step``
    returns it); nothing here presumes gradients or a step size (block Gibbs and
    temperature-driven samplers have none); :class:`GradientSampler` adds them.
    """

    def init(self, z: torch.Tensor | Sequence[torch.Tensor]) -> ChainState:
        """Start chains at ``z`` (a tensor, or a tuple such as ``(x, h)``)."""
        return ChainState(position=as_position(z))

    @abstractmethod
    def step(
        self, target: Target, state: Any, generator: torch.Generator | None = None
    ) -> tuple[Any, StepInfo]:
        """One transition of every chain."""

    @abstractmethod
    def hyperparameters(self) -> dict[str, Any]:
        """JSON-serializable constructor arguments (what :meth:`to_config` writes)."""

    def config_args(self) -> dict[str, Any]:
        return self.hyperparameters()

    def state_dict(self) -> dict[str, Any]:
        return {"class": type(self).__name__, **self.hyperparameters()}

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.hyperparameters() == other.hyperparameters()

    def __hash__(self) -> int:
        return hash(type(self).__name__)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"


Sampler.registry = SAMPLERS


class GradientSampler(Sampler):
    """A sampler driven by the target's gradient, with a step-size schedule delta_t."""

    step_size: Schedule

    def __init__(self, step_size: float | Schedule) -> None:
        self.step_size = as_schedule(step_size)

    def hyperparameters(self) -> dict[str, Any]:
        return {"step_size": self.step_size.config()}


Callback = Callable[[int, Any, StepInfo], None]


def run(
    sampler: Sampler,
    target: Target,
    state: Any,
    n_steps: int,
    *,
    generator: torch.Generator | None = None,
    thin: int = 1,
    trajectory: bool = False,
    callback: Callback | None = None,
) -> tuple[Any, list[torch.Tensor] | None]:
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
    state: MHState,
    proposal: Position,
    log_prob_new: torch.Tensor,
    grad_new: Position,
    log_ratio: torch.Tensor,
    step_size: float,
    generator: torch.Generator | None,
) -> tuple[MHState, MHInfo]:
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
    info = MHInfo(step_size=step_size, log_prob=log_prob, accept_prob=accept_prob, accepted=accepted)
    return advance(state, position=position, log_prob=log_prob, grad=grad), info


def select(mask: torch.Tensor, a: Position, b: Position) -> Position:
    """Per chain: ``a`` where ``mask``, else ``b``."""
    return tuple(torch.where(mask.view(-1, *([1] * (x.dim() - 1))), x, y) for x, y in zip(a, b, strict=True))


def advance(state: S, **changes: Any) -> S:
    """A new state with ``changes`` and the step counter incremented."""
    return replace(state, step=state.step + 1, **changes)
