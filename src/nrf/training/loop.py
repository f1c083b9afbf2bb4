"""The one training loop: every objective, every estimator, every run trains through it.

Per iteration t = 0, 1, ... the loop

1. takes the next batch from :class:`DataOrder` (rows in random order, epoch after
   epoch; with an ensemble network, one block of rows per member, each member with its
   own order; with several processes, this process's share of every block);
2. sets every learning rate to lr_g * s * f(t), with f the schedule
   (:data:`LR_SCHEDULES`) and s the rollback scale;
3. calls ``objective.training_step(batch, ctx)``; ``ctx.update(group, loss)`` back-propagates
   ``members * loss`` (the sum over ensemble members of their mean losses), averages the
   gradients over processes, clips them to norm ``grad_clip`` and steps the optimizer of
   the group; a non-finite loss, gradient or metric raises :class:`DivergenceError`;
4. updates the parameter average (EMA) of the energy, theta_avg <- d theta_avg + (1 - d) theta;
5. calls the callbacks (logging, evaluation, checkpoints, history, divergence guards).

A divergence is offered to the callbacks (``on_divergence``; a rollback callback restores
an earlier state and returns True); unhandled, it ends the fit with :class:`TrainingDiverged`.
:meth:`Loop.checkpoint` / :meth:`Loop.restore_checkpoint` hold everything needed to continue
bit for bit: parameters, optimizer states, the parameter average, the data order and, for
every process, its sampler stream and the objective's chains or replay buffer.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeGuard

import torch
from torch import nn

from nrf._console import stderr_is_terminal
from nrf.data.batch import Batch
from nrf.nn.ensemble import ensemble_size, tile
from nrf.objectives import Objective
from nrf.registry import ConfigError, Configurable, Registry
from nrf.training import checkpoint as ckpt
from nrf.training.distributed import SINGLE, DistInfo, any_rank, average_gradients, average_metrics, gather


class DivergenceError(RuntimeError):
    """Raised inside a step when training has diverged (handled by the loop)."""


class TrainingDiverged(RuntimeError):
    """Training diverged and no callback could recover (or recovery was used up)."""


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --- optimizers and learning-rate schedules -------------------------------------------------

OPTIMIZERS: Registry[torch.optim.Optimizer] = Registry("optimizer")
"""Optimizers by name; ``params`` come from the objective's parameter group."""


@OPTIMIZERS.register("adam", context=("params",))
@OPTIMIZERS.register("adamw", context=("params",), defaults={"decoupled": True})
def adam(
    params: list[nn.Parameter],
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.5, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    decoupled: bool = False,
) -> torch.optim.Optimizer:
    """Adam, or AdamW with ``decoupled`` weight decay (``"adamw"``); beta1 = 0.5 by default,
    the papers' tables' choice (torch's is 0.9).

    PyTorch's fused kernel is about twice as fast on small networks but did not resume bit
    for bit (torch 2.13, CPU), so the per-tensor implementation is used."""
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    return cls(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


@OPTIMIZERS.register("sgd", context=("params",))
def sgd(
    params: list[nn.Parameter],
    lr: float = 1e-3,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
) -> torch.optim.Optimizer:
    """Stochastic gradient descent with optional (Nesterov) momentum."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)


@OPTIMIZERS.register("rmsprop", context=("params",))
def rmsprop(
    params: list[nn.Parameter],
    lr: float = 1e-3,
    alpha: float = 0.9,
    eps: float = 1e-6,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """RMSprop with decay ``alpha`` and ``eps`` outside the root; the defaults (0.9, 1e-6)
    are those of the Inclusive-NRF authors' MNIST code (Lasagne's, where the epsilon sits
    inside the root)."""
    return torch.optim.RMSprop(
        params, lr=lr, alpha=alpha, eps=eps, momentum=momentum, weight_decay=weight_decay
    )


def build_optimizer(
    spec: Mapping[str, Any] | str, params: list[nn.Parameter], key: str = ""
) -> torch.optim.Optimizer:
    """The optimizer of ``spec`` (``{"name": "adam", "lr": ...}``) over ``params``."""
    return OPTIMIZERS.build(spec, key=key, params=params)


LR_SCHEDULES: Registry[Any] = Registry("learning-rate schedule")
"""Learning-rate schedules f(t) by name: lr_t = lr f(t)."""


class LRSchedule(Configurable):
    """A learning-rate factor as a function of the iteration t of a fit of ``total``
    iterations with ``per_epoch`` iterations per epoch."""

    def factor(self, t: int, total: int, per_epoch: int) -> float:
        raise NotImplementedError

    def config_args(self) -> dict[str, Any]:
        return {}


LRSchedule.registry = LR_SCHEDULES


@LR_SCHEDULES.register("constant")
class ConstantLR(LRSchedule):
    """f(t) = 1."""

    def factor(self, t: int, total: int, per_epoch: int) -> float:
        return 1.0


@LR_SCHEDULES.register("cosine")
class CosineLR(LRSchedule):
    """f(t) = (1 + cos(pi t / T)) / 2 over the T iterations of the fit (cosine annealing to 0)."""

    def factor(self, t: int, total: int, per_epoch: int) -> float:
        return 0.5 * (1.0 + math.cos(math.pi * min(t, total) / max(total, 1)))


@LR_SCHEDULES.register("power")
class PowerLR(LRSchedule):
    """f(t) = (1 + t / t0)^(-power), a power-law decay (the RBM learning rates of 004_…,
    Robbins-Monro style for ``power`` = 1), with t0 = ``scale`` x T (T the fit's iterations):
    the factor halves, for ``power`` = 1, after ``scale`` of the fit."""

    def __init__(self, power: float = 1.0, scale: float = 0.1) -> None:
        for name, value in (("power", power), ("scale", scale)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < math.inf:
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        self.power, self.scale = float(power), float(scale)

    def factor(self, t: int, total: int, per_epoch: int) -> float:
        return float((1.0 + t / max(self.scale * total, 1e-12)) ** -self.power)

    def config_args(self) -> dict[str, Any]:
        return {"power": self.power, "scale": self.scale}


@LR_SCHEDULES.register("exponential")
class ExponentialLR(LRSchedule):
    """f(t) = gamma^k with k the completed epochs (``every="epoch"``) or iterations
    (``every="step"``): e.g. gamma = 0.97 per epoch, the EBM tutorial's decay."""

    def __init__(self, gamma: float, every: str = "epoch") -> None:
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0.0 < gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {gamma!r}")
        if every not in ("epoch", "step"):
            raise ValueError(f"every must be 'epoch' or 'step', got {every!r}")
        self.gamma, self.every = float(gamma), every

    def factor(self, t: int, total: int, per_epoch: int) -> float:
        k = t // max(per_epoch, 1) if self.every == "epoch" else t
        return float(self.gamma**k)

    def config_args(self) -> dict[str, Any]:
        return {"gamma": self.gamma, "every": self.every}


@LR_SCHEDULES.register("multistep")
class MultiStepLR(LRSchedule):
    """f(t) = gamma^m with m the number of ``milestones`` at or before t, counted in epochs
    (``every="epoch"``: t // per_epoch) or iterations (``every="step"``): e.g. the BEAM
    paper's MNIST rate, 1e-3 for 25 epochs and 1e-4 after, is lr 1e-3 with milestones
    [25] and gamma 0.1."""

    def __init__(self, milestones: list[int], gamma: float = 0.1, every: str = "epoch") -> None:
        if not isinstance(milestones, (list, tuple)) or not milestones:
            raise ValueError(f"milestones must be a non-empty list of integers >= 1, got {milestones!r}")
        for m in milestones:
            if isinstance(m, bool) or not isinstance(m, int) or m < 1:
                raise ValueError(f"milestones must be integers >= 1, got {milestones!r}")
        if list(milestones) != sorted(set(milestones)):
            raise ValueError(f"milestones must be strictly increasing, got {list(milestones)}")
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0.0 < gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {gamma!r}")
        if every not in ("epoch", "step"):
            raise ValueError(f"every must be 'epoch' or 'step', got {every!r}")
        self.milestones, self.gamma, self.every = [int(m) for m in milestones], float(gamma), every

    def factor(self, t: int, total: int, per_epoch: int) -> float:
        k = t // max(per_epoch, 1) if self.every == "epoch" else t
        return float(self.gamma ** sum(1 for m in self.milestones if m <= k))

    def config_args(self) -> dict[str, Any]:
        return {"milestones": list(self.milestones), "gamma": self.gamma, "every": self.every}


# --- pieces of the loop ----------------------------------------------------------------------


def optimizer_step(
    optimizer: torch.optim.Optimizer,
    params: list[nn.Parameter],
    loss: torch.Tensor,
    *,
    group: str,
    step: int,
    grad_clip: float | None = None,
    dist: DistInfo = SINGLE,
) -> None:
    """Back-propagate ``loss`` into ``params`` and step ``optimizer``: gradients averaged over
    processes, clipped to norm ``grad_clip``; a non-finite loss or gradient raises
    :class:`DivergenceError` before any parameter changes."""
    if any_rank(not bool(torch.isfinite(loss)), dist):  # every process skips the all-reduce together
        raise DivergenceError(f"non-finite {group} loss ({float(loss.detach())}) at step {step}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    average_gradients(params, dist)
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    grads = [p.grad for p in params if p.grad is not None]
    # one check for all: a sum is finite iff every element is (or the sum overflows: a
    # gradient of ~1e38 / numel, a divergence all the same)
    if grads and not bool(torch.isfinite(torch.stack([g.sum() for g in grads])).all()):
        raise DivergenceError(f"non-finite {group} gradient at step {step}")
    optimizer.step()


class StepContext:
    """What an objective may use during a training step (:class:`nrf.objectives.StepContext`)."""

    def __init__(self, loop: Loop) -> None:
        self.loop = loop
        self.generator = loop.generator
        self.step = loop.step

    def update(self, group: str, loss: torch.Tensor) -> None:
        loop = self.loop
        if group not in loop.optimizers:
            raise KeyError(
                f"objective updated unknown optimizer group {group!r} (known: {sorted(loop.optimizers)})"
            )
        scaled = loss if loop.members == 1 else loss * loop.members  # sum of the members' means
        optimizer_step(loop.optimizers[group], loop.groups[group], scaled, group=group, step=loop.step,
                       grad_clip=loop.grad_clip, dist=loop.dist)  # fmt: skip


class DataOrder:
    """Row indices of the next batch: ``batch_size`` rows per ensemble member, each member
    drawing a permutation of the ``n`` rows per epoch from ``generator`` (full batches only;
    one batch of all rows when ``n < batch_size``); with several processes each takes the
    rows ``rank::world_size`` of every member's block."""

    def __init__(
        self, n: int, batch_size: int, members: int, generator: torch.Generator, dist: DistInfo = SINGLE
    ) -> None:
        if n < 1:
            raise ValueError(f"the training data must hold at least one row, got {n}")
        self.n, self.batch_size, self.members = n, min(batch_size, n), members
        self.generator, self.dist = generator, dist
        self.perm: torch.Tensor | None = None
        self.pos = 0
        self.epoch = 0

    @property
    def per_epoch(self) -> int:
        """Batches per epoch."""
        return self.batches_per_epoch(self.n, self.batch_size)

    @staticmethod
    def batches_per_epoch(n: int, batch_size: int) -> int:
        """Full batches of ``batch_size`` in ``n`` rows (1 when ``n < batch_size``)."""
        return n // min(batch_size, n)

    def next(self) -> torch.Tensor:
        bs = self.batch_size
        if self.perm is None or self.pos + bs > self.n:
            if self.perm is not None:
                self.epoch += 1
            self.perm = torch.stack(
                [torch.randperm(self.n, generator=self.generator) for _ in range(self.members)]
            )
            self.pos = 0
        idx = self.perm[:, self.pos : self.pos + bs]
        self.pos += bs
        if self.dist.world_size > 1:
            idx = idx[:, self.dist.rank :: self.dist.world_size]
        return idx.reshape(-1)

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors = {"data/rng": self.generator.get_state()}
        if self.perm is not None:
            tensors["data/perm"] = self.perm
        return tensors, {"pos": self.pos, "epoch": self.epoch}

    def restore(self, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> None:
        self.generator.set_state(tensors["data/rng"])
        self.perm = tensors.get("data/perm")
        self.pos, self.epoch = int(meta["pos"]), int(meta["epoch"])


class ParameterAverage:
    """Exponential moving average of a module's parameters (Polyak averaging):

        theta_avg <- d_t theta_avg + (1 - d_t) theta      after update t = 1, 2, ...,

    starting from the parameters at construction, with d_t = decay, or with ``warmup``
    d_t = min(decay, t / (t + 1)): the plain mean of the iterates until the window
    1 / (1 - decay) is reached, so that a short fit is not dominated by its
    initialization. :meth:`copy_to` writes the average into a module of the same structure.
    """

    def __init__(self, module: nn.Module, decay: float, *, warmup: bool = True) -> None:
        if isinstance(decay, bool) or not isinstance(decay, float | int) or not 0.0 < decay < 1.0:
            raise ValueError(f"ema must be a number in (0, 1) or None, got {decay!r}")
        self.decay = float(decay)
        self.warmup = warmup
        self.updates = 0
        self.live = [p.detach() for p in module.parameters()]  # views: optimizers update in place
        self.average = [p.clone() for p in self.live]

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        t = self.updates
        decay = min(self.decay, t / (t + 1)) if self.warmup else self.decay
        torch._foreach_lerp_(self.average, self.live, 1.0 - decay)

    @torch.no_grad()
    def copy_to(self, module: nn.Module) -> None:
        for p, a in zip(module.parameters(), self.average, strict=True):
            p.copy_(a)

    @contextmanager
    def applied(self, module: nn.Module) -> Iterator[None]:
        """The average in ``module`` inside the block, its own parameters restored after."""
        saved = [p.detach().clone() for p in module.parameters()]
        self.copy_to(module)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, s in zip(module.parameters(), saved, strict=True):
                    p.copy_(s)

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return {f"ema/{i}": a for i, a in enumerate(self.average)}, {"updates": self.updates}

    @torch.no_grad()
    def restore(self, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> None:
        for i, a in enumerate(self.average):
            a.copy_(tensors[f"ema/{i}"])
        self.updates = int(meta["updates"])


class Callback:
    """Hooks of the loop; every method is optional."""

    def on_start(self, loop: Loop) -> None:
        """Before the first iteration of :meth:`Loop.run`."""

    def check(self, loop: Loop, metrics: dict[str, float]) -> None:
        """After a step, before it counts: raise :class:`DivergenceError` to reject it."""

    def on_step(self, loop: Loop, metrics: dict[str, float]) -> None:
        """After a step has counted (``loop.step`` already incremented)."""

    def on_divergence(self, loop: Loop, reason: str) -> bool:
        """A step diverged; return True after restoring a state to continue from."""
        return False

    def on_end(self, loop: Loop) -> None:
        """After the last iteration."""

    def on_exit(self, loop: Loop) -> None:
        """When :meth:`Loop.run` returns or raises: release what :meth:`on_start` took."""


class EpochHistory(Callback):
    """Per-epoch means of the objective's metrics (``epochs``: one dict per epoch)."""

    def __init__(self) -> None:
        self.epochs: list[dict[str, float]] = []
        self.extra: dict[str, Any] = {}
        """JSON state of callbacks that write into the history (kept with it in checkpoints)."""
        self._sums: dict[str, float] = {}
        self._count = 0

    def on_step(self, loop: Loop, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self._sums[key] = self._sums.get(key, 0.0) + value
        self._count += 1
        if loop.step % loop.order.per_epoch == 0:
            self.epochs.append({k: v / self._count for k, v in self._sums.items()})
            self._sums, self._count = {}, 0

    def state(self) -> dict[str, Any]:
        """JSON of the history so far, including the running sums of the current epoch."""
        return {"epochs": self.epochs, "sums": self._sums, "count": self._count, "extra": self.extra}

    def restore(self, state: Mapping[str, Any]) -> None:
        self.epochs = [dict(e) for e in state["epochs"]]
        self.extra = dict(state.get("extra", {}))
        self._sums, self._count = dict(state["sums"]), int(state["count"])


def check_finite_metrics(metrics: Mapping[str, float], step: int) -> None:
    """A non-finite logged metric is a divergence."""
    for k, v in metrics.items():
        if not math.isfinite(v):
            raise DivergenceError(f"non-finite metric {k} = {v} at step {step}")


@dataclass
class Streams:
    """The random streams of a fit, all from one seed: network initialization
    (``torch.manual_seed(seed)`` around construction), the rows of the data-dependent
    initialization (``seed + 1``), the samplers (``seed + 2``, plus 7919 per process rank)
    and the data order (``seed + 3``). :meth:`from_user_seed` spreads a user's seed (0, 1,
    2, ...) over 31 bits first, as ``random_state`` does for estimators, so the streams of
    neighbouring seeds never coincide."""

    seed: int

    @classmethod
    def from_user_seed(cls, seed: int) -> Streams:
        """The streams of ``nrf train`` with ``run.seed`` = ``seed``, equal to those of an
        estimator with ``random_state=seed``."""
        import numpy as np

        return cls(int(np.random.RandomState(seed).randint(np.iinfo(np.int32).max)))

    def init_rows(self, n: int, count: int) -> torch.Tensor:
        """``count`` random rows of ``n`` for the data-dependent initialization."""
        return torch.randperm(n, generator=torch.Generator().manual_seed(self.seed + 1))[:count]

    def sampler(self, device: torch.device, rank: int = 0) -> torch.Generator:
        return torch.Generator(device=device).manual_seed(self.seed + 2 + 7919 * rank)

    def data(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed + 3)


class Loop:
    """Train ``objective`` on the rows of ``data`` (see the module docstring).

    Parameters
    ----------
    objective:
        The learning method and its networks.
    data:
        All training rows (and labels); batches are indexed on its device and moved to
        ``device``.
    optimizers:
        One optimizer spec per parameter group of the objective (``{"energy": {"name":
        "adam", "lr": 1e-4}, ...}``), or built optimizers.
    batch_size:
        Rows per member and step (over all processes).
    steps:
        Length of the fit (the schedule's T).
    generator, data_generator:
        Random streams of the samplers (``ctx.generator``) and of the data order.
    grad_clip:
        Clip every group's gradient norm to this value.
    ema:
        Decay of the parameter average of ``objective.energy`` (None: no average).
    lr_schedule:
        A :class:`LRSchedule` or its spec (None: constant).
    """

    def __init__(
        self,
        objective: Objective,
        data: Batch,
        optimizers: Mapping[str, Mapping[str, Any] | str | torch.optim.Optimizer],
        *,
        batch_size: int,
        steps: int,
        generator: torch.Generator,
        data_generator: torch.Generator,
        device: torch.device | str = "cpu",
        grad_clip: float | None = None,
        ema: float | None = None,
        lr_schedule: LRSchedule | Mapping[str, Any] | str | None = None,
        dist: DistInfo = SINGLE,
    ) -> None:
        self.objective = objective
        self.data = data
        self.device = torch.device(device)
        self.dist = dist
        self.members = ensemble_size(objective.energy)
        for name, module in objective.named_children():
            size = ensemble_size(module)
            if size != self.members and any(True for _ in module.parameters()):
                raise ValueError(
                    f"objective.{name} has {size} ensemble member(s) but the energy has {self.members}; "
                    "every trained network needs one weight set per member"
                )
        if grad_clip is not None and self.members > 1:
            raise ConfigError(
                f"train.grad_clip: clipping takes one norm over all parameters, which would couple the "
                f"{self.members} ensemble members; train them with grad_clip unset or one by one"
            )
        self.groups = objective.optimizer_groups()
        missing = sorted(set(self.groups) - set(optimizers))
        unknown = sorted(set(optimizers) - set(self.groups))
        if missing and unknown:  # e.g. a typo: [optim.enrgy] for the group energy
            import difflib

            near = {u: difflib.get_close_matches(u, missing, n=1) for u in unknown}
            table = next((u for u in unknown if near[u]), unknown[0])
            hint = f" (did you mean [optim.{near[table][0]}]?)" if near[table] else ""
            raise ConfigError(
                f"optim.{table}: not a parameter group of the objective (its groups: "
                f"{', '.join(sorted(self.groups))}){hint}; no optimizer table for "
                f"{', '.join('optim.' + m for m in missing)}"
            )
        if missing:
            raise ConfigError(
                f"optim.{missing[0]}: the objective needs an optimizer for this parameter group"
            )
        unused = sorted(set(optimizers) - set(self.groups))
        if unused:
            raise ConfigError(
                f"optim.{unused[0]}: not a parameter group of the objective ({sorted(self.groups)})"
            )
        self.optimizers = {
            g: o if isinstance(o, torch.optim.Optimizer) else build_optimizer(o, self.groups[g], f"optim.{g}")
            for g, o in optimizers.items()
        }
        self.base_lrs = {g: [pg["lr"] for pg in o.param_groups] for g, o in self.optimizers.items()}
        if lr_schedule is None or isinstance(lr_schedule, LRSchedule):
            self.schedule: LRSchedule = lr_schedule or ConstantLR()
        else:
            self.schedule = LR_SCHEDULES.build(lr_schedule, key="lr_schedule")
        self.steps = steps
        self.generator = generator
        self.order = DataOrder(len(data), batch_size, self.members, data_generator, dist)
        self.grad_clip = grad_clip
        self.average = None if ema is None else ParameterAverage(objective.energy, ema)
        self.step = 0
        self.stop_requested = False
        """Set by a callback to end :meth:`run` after the current step (e.g. a time budget)."""
        self.lr_scale = 1.0

    # --- initialization and state ---------------------------------------------------------

    def initialize(self, rows: torch.Tensor) -> None:
        """Data-dependent initialization of the networks on the data rows ``rows`` (every
        member on the same rows); restarts the parameter average from the result."""
        if rows.numel() == 0:
            raise ValueError(
                "the data-dependent initialization needs at least one row (model.init_batch >= 1)"
            )
        chosen = self.data.select(rows.to(self.data.x.device)).to(self.device)
        self.objective.initialize_batch(
            Batch(tile(chosen.x, self.members), None if chosen.y is None else tile(chosen.y, self.members))
        )
        bad = [name for name, p in self.objective.named_parameters() if not bool(torch.isfinite(p).all())]
        if bad:
            raise ValueError(
                f"the data-dependent initialization on {rows.numel()} row(s) left non-finite values in "
                f"{bad[0]}"
                + (f" and {len(bad) - 1} more" if len(bad) > 1 else "")
                + " (too few rows, or constant or non-finite data?)"
            )
        if self.average is not None:
            self.average = ParameterAverage(self.objective.energy, self.average.decay)

    def apply_lr(self) -> None:
        f = self.lr_scale * self.schedule.factor(self.step, self.steps, self.order.per_epoch)
        for g, opt in self.optimizers.items():
            for pg, base in zip(opt.param_groups, self.base_lrs[g], strict=True):
                pg["lr"] = base * f

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Tensors and JSON of everything :meth:`restore` needs (this process's streams)."""
        tensors = {f"model/{k}": v for k, v in self.objective.state_dict().items()}
        meta: dict[str, Any] = {"optim": {}, "step": self.step, "lr_scale": self.lr_scale}
        for g, opt in self.optimizers.items():
            t, m = ckpt.optimizer_to_flat(f"optim/{g}", opt)
            tensors.update(t)
            meta["optim"][g] = {**m, "kind": type(opt).__name__}
        t, meta["data"] = self.order.state()
        tensors.update(t)
        if self.average is not None:
            t, meta["ema"] = self.average.state()
            tensors.update(t)
        return tensors, meta

    def restore(self, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> None:
        model = {k[len("model/") :]: v for k, v in tensors.items() if k.startswith("model/")}
        try:
            self.objective.load_state_dict(model)
        except RuntimeError as exc:
            detail = " ".join(str(exc).split())[:300]
            raise ckpt.CheckpointMismatch(
                "the checkpoint's networks do not match the ones the config builds (was a model.* "
                f"setting such as model.n_models or a network size changed?): {detail}"
            ) from None
        self.objective.to(self.device)
        for g, opt in self.optimizers.items():
            saved = meta["optim"][g].get("kind")
            if saved is not None and saved != type(opt).__name__:
                # Another optimizer's moments mean nothing to this one: it starts afresh.
                warnings.warn(
                    f"optim.{g}: the checkpoint's optimizer is {saved}, the config's "
                    f"{type(opt).__name__}; its state (moments, step counts) starts afresh",
                    UserWarning,
                    stacklevel=2,
                )
                continue
            ckpt.optimizer_from_flat(f"optim/{g}", opt, dict(tensors), meta["optim"][g])
        self.order.restore(tensors, meta["data"])
        if self.average is not None:
            if "ema" in meta:
                self.average.restore(tensors, meta["ema"])
            else:  # the average switched on at resume: it starts from the restored parameters
                self.average = ParameterAverage(self.objective.energy, self.average.decay)
        self.step, self.lr_scale = int(meta["step"]), float(meta["lr_scale"])
        self.apply_lr()

    def sampler_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """This process's sampler stream and the objective's extra state (chains, buffers)."""
        tensors: dict[str, torch.Tensor] = {"rng/sampler": self.generator.get_state().cpu()}
        meta: dict[str, Any] = {}
        for k, v in self.objective.extra_state().items():
            if isinstance(v, torch.Tensor):
                tensors[f"extra/{k}"] = v.cpu()
            else:
                meta[k] = v
        return tensors, meta

    def restore_sampler_state(self, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> None:
        self.generator.set_state(tensors["rng/sampler"].to(self.generator.device))
        extra: dict[str, Any] = dict(meta)
        extra.update(
            {k[len("extra/") :]: v.to(self.device) for k, v in tensors.items() if k.startswith("extra/")}
        )
        self.objective.load_extra_state(extra)

    def checkpoint(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """:meth:`state` plus every process's :meth:`sampler_state` (``rank{r}/`` tensors,
        ``meta["ranks"][r]``): what a checkpoint holds. A collective call with several
        processes (every rank must make it)."""
        tensors, meta = self.state()
        meta["ranks"] = []
        for r, (rank_tensors, rank_meta) in enumerate(gather(self.sampler_state(), self.dist)):
            tensors.update({f"rank{r}/{k}": v for k, v in rank_tensors.items()})
            meta["ranks"].append(rank_meta)
        meta["world_size"] = self.dist.world_size
        return tensors, meta

    def restore_checkpoint(self, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> None:
        """Inverse of :meth:`checkpoint` (this process's part). A checkpoint of other networks
        or another process count raises :class:`~nrf.training.checkpoint.CheckpointMismatch`;
        content that does not restore (damage :meth:`checkpoint_problem` did not see) raises
        :class:`~nrf.training.checkpoint.CheckpointError`. Either way the loop's state is
        partly overwritten: restore another checkpoint or give up."""
        if meta.get("world_size", 1) != self.dist.world_size:
            raise ckpt.CheckpointMismatch(
                f"checkpoint was written by {meta.get('world_size')} process(es); resume with the same number"
            )
        try:
            self.restore(tensors, meta)
            prefix = f"rank{self.dist.rank}/"
            mine = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            self.restore_sampler_state(mine, meta["ranks"][self.dist.rank])
        except ckpt.CheckpointMismatch:
            raise
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
            detail = " ".join(str(exc).split())[:200]
            raise ckpt.CheckpointError(f"content does not restore ({type(exc).__name__}: {detail})") from None

    def checkpoint_problem(self, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> str | None:
        """Why ``(tensors, meta)`` cannot be what :meth:`checkpoint` wrote (a key missing, a
        value of the wrong type), or None. Callers skip such a checkpoint as damaged; a
        checkpoint of other networks or another process count is not damaged and fails in
        :meth:`restore_checkpoint` with its own error."""

        bad = ckpt.bad_field
        step, lr_scale = meta.get("step"), meta.get("lr_scale")
        if not _is_int(step) or step < 0:
            return bad("step", "an integer >= 0", step)
        if not _is_number(lr_scale) or not math.isfinite(lr_scale) or lr_scale <= 0:
            return bad("lr_scale", "a finite number > 0", lr_scale)
        optim = meta.get("optim")
        if not isinstance(optim, Mapping) or set(optim) != set(self.optimizers):
            keys = sorted(optim) if isinstance(optim, Mapping) else optim
            return bad("optim", f"one entry per parameter group {sorted(self.optimizers)}", keys)
        for g, opt in self.optimizers.items():
            entry = optim[g]
            groups = entry.get("param_groups") if isinstance(entry, Mapping) else None
            if (
                not isinstance(groups, list)
                or len(groups) != len(opt.param_groups)
                or not all(isinstance(pg, Mapping) and _is_number(pg.get("lr")) for pg in groups)
                or not isinstance(entry.get("scalars", {}), Mapping)
            ):
                return bad(f"optim.{g}", f"{len(opt.param_groups)} parameter group(s) with an lr", entry)
        data = meta.get("data")
        if not isinstance(data, Mapping) or not _is_int(data.get("pos")) or not _is_int(data.get("epoch")):
            return bad("data", "the data order's pos and epoch", data)
        world = meta.get("world_size", 1)
        if not _is_int(world) or world < 1:
            return bad("world_size", "an integer >= 1", world)
        ranks = meta.get("ranks")
        if (
            not isinstance(ranks, list)
            or len(ranks) != world
            or not all(isinstance(r, Mapping) for r in ranks)
        ):
            return bad("ranks", f"one entry per process ({world})", ranks)
        needed = ["data/rng", *(f"rank{r}/rng/sampler" for r in range(world))]
        if "ema" in meta:
            ema = meta["ema"]
            if not isinstance(ema, Mapping) or not _is_int(ema.get("updates")):
                return bad("ema", "the parameter average's update count", ema)
            if self.average is not None:
                needed += [f"ema/{i}" for i in range(len(self.average.average))]
        missing = [k for k in needed if k not in tensors]
        if missing:
            return f"{ckpt.TENSORS}: tensor {missing[0]!r} missing"
        return None

    @contextmanager
    def averaged(self) -> Iterator[None]:
        """The parameter average in the energy inside the block (a no-op without EMA)."""
        if self.average is None:
            yield
            return
        with self.average.applied(self.objective.energy):
            yield

    def finish(self) -> None:
        """Write the parameter average into the energy (the model kept after a fit)."""
        if self.average is not None:
            self.average.copy_to(self.objective.energy)

    # --- the loop -------------------------------------------------------------------------

    def run(
        self,
        callbacks: Sequence[Callback] = (),
        *,
        until: int | None = None,
        progress: bool = False,
        desc: str = "fit",
        describe: Callable[[int], str] | None = None,
    ) -> None:
        """Iterate until ``loop.step == until`` (default: ``steps``); every callback's
        :meth:`Callback.on_exit` runs at the end, also when a callback or a step raises."""
        end = self.steps if until is None else until
        try:
            for cb in callbacks:
                cb.on_start(self)
            self._run(callbacks, end, progress, desc, describe)
        finally:
            for cb in callbacks:
                cb.on_exit(self)

    def _run(
        self,
        callbacks: Sequence[Callback],
        end: int,
        progress: bool,
        desc: str,
        describe: Callable[[int], str] | None,
    ) -> None:
        from tqdm.auto import tqdm

        self.objective.train()
        bar = tqdm(
            total=end,
            initial=self.step,
            disable=not (progress and stderr_is_terminal()),
            desc=desc,
            dynamic_ncols=True,
            leave=False,
        )
        try:
            while self.step < end and not self.stop_requested:
                self.apply_lr()
                batch = self.data.select(self.order.next()).to(self.device)
                try:
                    metrics = self.objective.training_step(batch, StepContext(self))
                    metrics = average_metrics(metrics, self.dist)
                    check_finite_metrics(metrics, self.step)
                    for cb in callbacks:
                        cb.check(self, metrics)
                    diverged = None
                except DivergenceError as exc:
                    diverged = str(exc)
                if any_rank(diverged is not None, self.dist):
                    reason = diverged or "divergence on another process"
                    if not any(cb.on_divergence(self, reason) for cb in callbacks):
                        where = describe(self.step) if describe else f"at step {self.step}"
                        raise TrainingDiverged(f"training diverged {where}: {reason}")
                    bar.n = self.step
                    continue
                if self.average is not None:
                    self.average.update()
                self.step += 1
                bar.update(1)
                for cb in callbacks:
                    cb.on_step(self, metrics)
        finally:
            bar.close()
        for cb in callbacks:
            cb.on_end(self)
