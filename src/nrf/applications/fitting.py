"""An in-memory training loop for estimators: epochs over a tensor, no run directory.

:class:`~nrf.training.trainer.Trainer` is the loop for configured runs (checkpoints,
resumption, rollback); estimators such as :class:`~nrf.applications.NRFDetector` train in
memory like any scikit-learn model, and a diverged fit raises instead of rolling back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from nrf.objectives import Objective
from nrf.training.trainer import DivergenceError, optimizer_step


class FitDiverged(RuntimeError):
    """Training produced a non-finite loss or gradient."""


@dataclass
class _Context:
    optimizers: dict[str, torch.optim.Optimizer]
    groups: dict[str, list[torch.nn.Parameter]]
    generator: torch.Generator
    step: int = 0
    grad_clip: float | None = None

    def update(self, group: str, loss: torch.Tensor) -> None:
        optimizer_step(self.optimizers[group], self.groups[group], loss, group=group, step=self.step,
                       grad_clip=self.grad_clip)  # fmt: skip


class ParameterAverage:
    """Exponential moving average of a module's parameters (Polyak averaging):

        theta_avg <- d_t theta_avg + (1 - d_t) theta      after update t = 1, 2, ...,

    starting from the parameters at construction, with d_t = decay, or with ``warmup``
    d_t = min(decay, t / (t + 1)): the plain mean of the iterates until the window
    1 / (1 - decay) is reached, so that a short fit is not dominated by its
    initialization. :meth:`copy_to` writes the average into a module of the same
    structure (the model kept in the end, without the iteration-to-iteration swings of
    adversarial-style training).
    """

    def __init__(self, module: torch.nn.Module, decay: float, *, warmup: bool = True) -> None:
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
    def copy_to(self, module: torch.nn.Module) -> None:
        for p, a in zip(module.parameters(), self.average, strict=True):
            p.copy_(a)


@dataclass
class FitHistory:
    """Per-epoch means of the objective's logged metrics, and the iterations run."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    iterations: int = 0


def iterations_per_epoch(n: int, batch_size: int) -> int:
    """Batches per epoch of :func:`fit_epochs`: full batches only, or one batch of all ``n``
    rows when ``n < batch_size``."""
    return n // min(batch_size, n)


def fit_epochs(
    objective: Objective,
    data: torch.Tensor,
    optimizers: dict[str, torch.optim.Optimizer],
    *,
    epochs: int,
    batch_size: int,
    generator: torch.Generator,
    data_generator: torch.Generator,
    verbose: bool = False,
    average: ParameterAverage | None = None,
    schedulers: Sequence[torch.optim.lr_scheduler.LRScheduler] = (),
) -> FitHistory:
    """Train ``objective`` for ``epochs`` passes over ``data`` (rows shuffled every epoch with
    ``data_generator``; the incomplete last batch is dropped unless it is the only one).
    With batched models (``objective.n_models > 1``) a batch holds one block of
    ``batch_size`` rows per model, each model shuffling the data on its own.
    ``average`` (a :class:`ParameterAverage`) is updated and every learning-rate scheduler
    in ``schedulers`` stepped after every iteration.
    """
    groups = objective.optimizer_groups()
    ctx = _Context(optimizers, groups, generator)
    n = data.shape[0]
    models = objective.n_models
    bs = min(batch_size, n)
    per_epoch = iterations_per_epoch(n, bs)
    history = FitHistory()
    objective.train()
    bar = tqdm(total=epochs * per_epoch, disable=not verbose, desc="fit", unit="it", leave=False)
    try:
        for epoch in range(epochs):
            # batched models (objective.n_models > 1): one block of rows per model, each model
            # going through the data in its own order
            perm = torch.stack([torch.randperm(n, generator=data_generator) for _ in range(models)])
            perm = perm.to(data.device)
            sums: dict[str, float] = {}
            for i in range(per_epoch):
                batch = data[perm[:, i * bs : (i + 1) * bs].reshape(-1)]
                try:
                    metrics = objective.training_step(batch, ctx)
                except DivergenceError as exc:
                    raise FitDiverged(
                        f"training diverged in epoch {epoch + 1}, iteration {ctx.step + 1}: {exc}; "
                        "lower the learning rates or the sampler's step_size"
                    ) from None
                if average is not None:
                    average.update()
                for scheduler in schedulers:
                    scheduler.step()
                for key, value in metrics.items():
                    sums[key] = sums.get(key, 0.0) + value
                ctx.step += 1
                bar.update(1)
            means = {key: value / per_epoch for key, value in sums.items()}
            bad = [key for key, value in means.items() if not math.isfinite(value)]
            if bad:
                raise FitDiverged(f"training diverged in epoch {epoch + 1}: non-finite {bad[0]}")
            history.epochs.append(means)
            if verbose:
                bar.set_postfix({k: f"{v:.3g}" for k, v in list(means.items())[:3]})
    finally:
        bar.close()
    history.iterations = ctx.step
    objective.eval()
    return history
