"""Configured runs: the one training loop (:mod:`nrf.training.loop`) plus the callbacks of
a run directory.

The trainer builds the loop from a :class:`~nrf.training.config.Config` (optimizers per
parameter group, schedule, parameter average, batch, seeds) and adds logging (tqdm,
``metrics.jsonl``, TensorBoard when installed), evaluation hooks, checkpoints and
divergence recovery (:class:`DivergenceGuard`), so a run can resume bit for bit.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from nrf.data.batch import Batch
from nrf.objectives import Objective
from nrf.training import checkpoint as ckpt
from nrf.training.config import Config, dumps
from nrf.training.data import TrainingData
from nrf.training.distributed import SINGLE, DistInfo, any_rank, broadcast_module
from nrf.training.evaluation import Evaluator, build_evaluators, default_evaluators
from nrf.training.loop import Callback, DivergenceError, Loop, Streams, TrainingDiverged
from nrf.training.recovery import DivergenceGuard, RunCheckpoints
from nrf.training.rundir import RunDir

__all__ = ["DivergenceError", "DivergenceGuard", "RunCheckpoints", "Trainer", "TrainingDiverged"]


class Trainer(Callback):
    """Train ``objective`` on ``data`` as configured, writing into ``run_dir``.

    Call :meth:`fit` for a new run or :meth:`fit` with ``resume=True`` to continue from
    the newest valid checkpoint in ``run_dir/checkpoints``.
    """

    def __init__(
        self,
        objective: Objective,
        data: TrainingData,
        cfg: Config,
        run_dir: str | os.PathLike[str],
        *,
        device: torch.device | str = "cpu",
        evaluators: Sequence[Evaluator] | None = None,
        dist: DistInfo = SINGLE,
    ) -> None:
        self.objective = objective
        self.data = data
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.device = torch.device(device)
        self.dist = dist
        if evaluators is None:
            configured = cfg.train.evaluators
            evaluators = (
                default_evaluators(data) if configured is None else build_evaluators(configured, data)
            )
        self.evaluators = list(evaluators)
        self.objective.to(self.device)
        streams = Streams.from_user_seed(cfg.run.seed)
        self.streams = streams
        self.loop = Loop(
            objective, Batch(data.train, data.train_labels), cfg.optim,
            batch_size=cfg.train.batch_size, steps=cfg.train.steps,
            generator=streams.sampler(self.device, dist.rank), data_generator=streams.data(),
            device=self.device, grad_clip=cfg.train.grad_clip, ema=cfg.train.ema,
            lr_schedule=cfg.train.lr_schedule, dist=dist,
        )  # fmt: skip
        self.layout = RunDir(self.run_dir)
        self.ckpt_dir = self.layout.checkpoints
        self.checkpoints = RunCheckpoints(self.ckpt_dir, cfg.train.keep_last)
        self.guard = DivergenceGuard(cfg.divergence, self.checkpoints, self._restore, self._log, dist.is_main)
        self.guard.on_stop = lambda: self._write_summary("diverged")
        self.best: float | None = None
        self.started = time.time()
        self.elapsed_before = 0.0
        self._tb: Any = None
        self._window: dict[str, list[float]] = {}
        self._bar: Any = None

    @property
    def step(self) -> int:
        return self.loop.step

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self.loop.optimizers

    # --- state ---------------------------------------------------------------------------

    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors, meta = self.loop.checkpoint()
        meta.update(
            epoch=self.loop.order.epoch, rollbacks=self.guard.rollbacks, gap_strikes=self.guard.gap_strikes,
            best=self.best, elapsed=self.elapsed_before + time.time() - self.started,
        )  # fmt: skip
        return tensors, meta

    def _restore(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        if "data" not in meta or "data/rng" not in tensors:
            raise ValueError(
                "checkpoint written by an nrf version before the one training loop (no loop state); "
                "its model can be sampled and scored (nrf sample / score) but the run not resumed"
            )
        self.loop.restore_checkpoint(tensors, meta)
        self.guard.rollbacks, self.guard.gap_strikes = int(meta["rollbacks"]), int(meta["gap_strikes"])
        self.best = meta.get("best")
        self.elapsed_before = float(meta.get("elapsed", 0.0))
        self.started = time.time()

    def save(self, folder: Path | None = None) -> Path | None:
        tensors, meta = self._state()
        if not self.dist.is_main:
            return None
        if folder is None:
            path = self.checkpoints.save(tensors, meta, self.step)
        else:
            path = ckpt.save_checkpoint(folder, tensors, meta)
        self._write_summary("running")
        return path

    # --- logging -------------------------------------------------------------------------

    def _log(self, record: dict[str, Any]) -> None:
        if not self.dist.is_main:
            return
        record = {"time": round(self.elapsed_before + time.time() - self.started, 3), **record}
        with open(self.layout.metrics, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self._tb is not None and record.get("phase") in ("train", "eval"):
            for k, v in record.items():
                if isinstance(v, float):
                    self._tb.add_scalar(f"{record['phase']}/{k}", v, record["step"])

    def _write_summary(self, status: str, final: dict[str, float] | None = None) -> None:
        if not self.dist.is_main:
            return
        summary = {
            "name": self.cfg.run.name, "status": status, "step": self.step, "steps": self.cfg.train.steps,
            "epoch": self.loop.order.epoch, "rollbacks": self.guard.rollbacks, "lr_scale": self.loop.lr_scale,
            "wall_seconds": round(self.elapsed_before + time.time() - self.started, 2),
            "final": final or {}, "best": self.best,
        }  # fmt: skip
        tmp = self.layout.summary.with_name(self.layout.summary.name + ".tmp")
        tmp.write_text(json.dumps(summary, indent=1))
        os.replace(tmp, self.layout.summary)

    def _open_tensorboard(self) -> None:
        if not self.dist.is_main:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional
            return
        self._tb = SummaryWriter(str(self.layout.tensorboard))

    # --- evaluation ----------------------------------------------------------------------

    def evaluate(self) -> dict[str, float]:
        """Run the evaluators (rank 0) on the model kept (the parameter average when
        ``train.ema`` is set), log their metrics, keep ``checkpoints/best``."""
        metrics: dict[str, float] = {}
        improved = False
        if self.dist.is_main and self.evaluators:
            gen = torch.Generator(device=self.device).manual_seed(self.cfg.run.seed * 7919 + self.step)
            self.objective.eval()
            try:
                with self.loop.averaged():
                    for evaluator in self.evaluators:
                        metrics.update(evaluator(self.objective, self.step, self.run_dir, gen))
            finally:
                self.objective.train()
            self._log({"phase": "eval", "step": self.step, "epoch": self.loop.order.epoch, **metrics})
            key, mode = self.cfg.train.best_metric, self.cfg.train.best_mode
            if key is not None and key in metrics:
                value = metrics[key]
                improved = self.best is None or (value > self.best if mode == "max" else value < self.best)
                if improved:
                    self.best = value
        if any_rank(improved, self.dist):  # every rank joins the save (it gathers their states)
            self.save(self.layout.best)
        return metrics

    # --- loop callbacks ------------------------------------------------------------------

    def check(self, loop: Loop, metrics: dict[str, float]) -> None:
        self.guard.check(loop, metrics)

    def on_divergence(self, loop: Loop, reason: str) -> bool:
        handled = self.guard.on_divergence(loop, reason)
        self._window.clear()
        if self._bar is not None:
            self._bar.n = loop.step  # back at the restored step
            self._bar.refresh()
        return handled

    def on_step(self, loop: Loop, metrics: dict[str, float]) -> None:
        cfg = self.cfg.train
        if self._bar is not None:
            self._bar.update(1)
        for k, v in metrics.items():
            self._window.setdefault(k, []).append(v)
        if self.step % cfg.log_every == 0 or self.step == cfg.steps:
            means = {k: sum(v) / len(v) for k, v in self._window.items()}
            lrs = {f"lr_{g}": opt.param_groups[0]["lr"] for g, opt in self.optimizers.items()}
            self._log({"phase": "train", "step": self.step, "epoch": loop.order.epoch, **means, **lrs})
            if self._bar is not None:
                self._bar.set_postfix({k: f"{v:.3g}" for k, v in means.items() if k in _SHOWN})
            self._window.clear()
        if cfg.eval_every and self.step % cfg.eval_every == 0 and self.step < cfg.steps:
            self.evaluate()
        if self.step % cfg.checkpoint_every == 0 and self.step < cfg.steps:
            self.save()

    # --- the run -------------------------------------------------------------------------

    def _start(self, resume: bool) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            found = self.checkpoints.latest()
            if found is None:
                raise FileNotFoundError(f"{self.ckpt_dir}: no valid checkpoint to resume from")
            self._restore(found[1], found[2])
            if self.dist.is_main:  # overrides given to `nrf resume` become part of the run's config
                self.layout.config.write_text(dumps(self.cfg))
            self._log(
                {
                    "phase": "event",
                    "step": self.step,
                    "event": "resume",
                    "message": f"resumed from {found[0].name}",
                }
            )
            return
        if self.dist.is_main:
            self.layout.config.write_text(dumps(self.cfg))
            self.layout.plots.mkdir(exist_ok=True)
            metrics_file = self.layout.metrics
            if metrics_file.exists():
                metrics_file.unlink()
        self.loop.initialize(self.streams.init_rows(self.data.train.shape[0], self.cfg.model.init_batch))
        broadcast_module(self.objective, self.dist)
        self.save()

    def fit(self, resume: bool = False) -> dict[str, float]:
        """Train to ``train.steps``; returns the final evaluation metrics."""
        from tqdm.auto import tqdm

        self._start(resume)
        self._open_tensorboard()
        cfg = self.cfg.train
        self._bar = tqdm(total=cfg.steps, initial=self.step, disable=not (cfg.progress and self.dist.is_main),
                         desc=self.cfg.run.name, dynamic_ncols=True)  # fmt: skip
        try:
            self.loop.run([self])
        finally:
            self._bar.close()
            self._bar = None
        final = self.evaluate()
        self.save()
        self._write_summary("completed", final)
        self.loop.finish()  # the model kept: the parameter average when train.ema is set
        if self._tb is not None:
            self._tb.close()
        return final


_SHOWN = ("loss", "energy_data", "energy_samples")
