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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from nrf._console import stderr_is_terminal
from nrf.data.batch import Batch
from nrf.objectives import Objective
from nrf.training import checkpoint as ckpt
from nrf.training.config import Config, dumps
from nrf.training.data import TrainingData
from nrf.training.distributed import SINGLE, DistInfo, any_rank, broadcast_module
from nrf.training.evaluation import Evaluator, build_evaluators, default_evaluators
from nrf.training.lock import FolderLock
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
        self.checkpoints = RunCheckpoints(self.ckpt_dir, cfg.train.keep_last, self.loop.checkpoint_problem)
        self.lock = FolderLock(self.run_dir, "run folder")
        self.guard = DivergenceGuard(
            cfg.divergence, self.checkpoints, self._roll_back, self._log, dist.is_main
        )
        self.guard.on_stop = lambda: self._write_summary("diverged")
        self.best: float | None = None
        self.final: dict[str, float] | None = None
        self.stopped_early = False
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
        log = self.layout.metrics
        meta.update(
            epoch=self.loop.order.epoch, rollbacks=self.guard.rollbacks, gap_strikes=self.guard.gap_strikes,
            best=self.best, elapsed=self.elapsed_before + time.time() - self.started,
            log_bytes=log.stat().st_size if log.exists() else 0,  # the log up to this state
        )  # fmt: skip
        if self.final is not None:
            meta["final"] = self.final  # the final evaluation is done: a resume does not repeat it
        return tensors, meta

    def _restore(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        if "data" not in meta or "data/rng" not in tensors:
            raise ckpt.CheckpointMismatch(
                "checkpoint written by an nrf version before the one training loop (no loop state); "
                "its model can be sampled and scored (nrf sample / score) but the run not resumed"
            )
        own = {"rollbacks": meta.get("rollbacks"), "gap_strikes": meta.get("gap_strikes")}
        for key, value in own.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ckpt.CheckpointError(
                    f"state.json {key}: expected an integer >= 0, got {str(value)[:60]!r}"
                )
        best, elapsed = meta.get("best"), meta.get("elapsed", 0.0)
        for key, value in (("best", best), ("elapsed", elapsed)):
            if not (value is None and key == "best") and (
                not isinstance(value, int | float) or isinstance(value, bool)
            ):
                raise ckpt.CheckpointError(ckpt.bad_field(key, "a number", value))
        final = meta.get("final")
        if final is not None and not isinstance(final, dict):
            raise ckpt.CheckpointError(
                f"state.json final: expected the final metrics, got {str(final)[:60]!r}"
            )
        self.loop.restore_checkpoint(tensors, meta)
        self.guard.rollbacks, self.guard.gap_strikes = (
            int(own["rollbacks"] or 0),
            int(own["gap_strikes"] or 0),
        )
        self.best = best
        self.elapsed_before = float(elapsed)
        self.started = time.time()

    def _roll_back(self, tensors: dict[str, Any], meta: dict[str, Any]) -> None:
        """Restore a checkpoint for the divergence guard: as :meth:`_restore`, but the run's
        clock keeps counting (the wall time spent on the abandoned steps is spent: event
        times stay in order and ``train.max_seconds`` is not extended by a rollback)."""
        spent = self.elapsed_before + time.time() - self.started
        self._restore(tensors, meta)
        self.elapsed_before, self.started = spent, time.time()

    def save(self, folder: Path | None = None) -> Path | None:
        tensors, meta = self._state()
        if not self.dist.is_main:
            return None
        if folder is None:
            keep = self.guard.good_before(self.step)
            path = self.checkpoints.save(tensors, meta, self.step, keep_before=keep)
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
        improved, problem = False, None
        if self.dist.is_main:
            if self.evaluators:
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
            if key is not None and key not in metrics:
                problem = ValueError(
                    f"train.best_metric: {key!r} is not a metric of this run's evaluators (they give "
                    f"{sorted(metrics)}); resume with --set train.best_metric=... (one of them)"
                )
            elif key is not None:
                value = metrics[key]
                improved = self.best is None or (value > self.best if mode == "max" else value < self.best)
                if improved:
                    self.best = value
        if any_rank(problem is not None, self.dist):
            raise problem or ValueError("train.best_metric: not a metric of this run's evaluators")
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
        if cfg.max_seconds is not None:
            spent = self.elapsed_before + time.time() - self.started >= cfg.max_seconds
            if any_rank(spent, self.dist):  # every process stops at the same step
                loop.stop_requested = True
                self.stopped_early = True
                message = f"train.max_seconds = {cfg.max_seconds:g} spent at step {self.step} of {cfg.steps}"
                self._log({"phase": "event", "step": self.step, "event": "time budget", "message": message})
                return  # the final evaluation and checkpoint follow
        if cfg.eval_every and self.step % cfg.eval_every == 0 and self.step < cfg.steps:
            self.evaluate()
        if self.step % cfg.checkpoint_every == 0 and self.step < cfg.steps:
            self.save()

    # --- the run -------------------------------------------------------------------------

    def _on_main(self, action: Callable[[], None]) -> None:
        """Run ``action`` on the main process; every process raises if it failed there."""
        error: Exception | None = None
        if self.dist.is_main:
            try:
                action()
            except (OSError, ValueError) as exc:
                error = exc
        if any_rank(error is not None, self.dist):
            raise error or RuntimeError(f"{self.run_dir}: the main process refused the run (see its error)")

    def _claim(self, resume: bool) -> None:
        """Lock the run folder, clean what killed writes left, and check what it holds."""
        self.lock.acquire()
        layout = self.layout
        self.checkpoints.clean()
        layout.summary.with_name(layout.summary.name + ".tmp").unlink(missing_ok=True)
        if resume:
            return
        held = [p.name for p in ckpt.list_checkpoints(layout.checkpoints)[-1:]]
        held += ["checkpoints/best"] if layout.best.exists() else []
        if held:
            raise FileExistsError(
                f"{self.run_dir} already holds a run ({', '.join(held)}); continue it with "
                f"`nrf resume {self.run_dir}` or choose another name (--set run.name=...)"
            )
        if layout.metrics.exists():  # a run that left no checkpoint: its log is kept, never cut
            self._cut_log({})
            message = "started again: the run folder held no checkpoint to resume from"
            self._log({"phase": "event", "step": 0, "event": "restart", "message": message})

    def _cut_log(self, meta: dict[str, Any]) -> None:
        """Cut ``metrics.jsonl`` back to what it held when the checkpoint was written: the
        lines of the steps after it are written again by the resumed run."""
        log = self.layout.metrics
        if not log.exists():
            return
        size = log.stat().st_size
        kept = meta.get("log_bytes")
        if not (isinstance(kept, int) and 0 <= kept <= size):  # older checkpoints: a partial last line
            with open(log, "rb") as f:
                text = f.read()
            kept = text.rfind(b"\n") + 1 if text and not text.endswith(b"\n") else size
        if kept < size:
            os.truncate(log, kept)

    def _start(self, resume: bool) -> None:
        self._on_main(lambda: self._claim(resume))
        if resume:
            found = self.checkpoints.latest(warn=self.dist.is_main, restore=self._restore)
            if found is None:
                raise FileNotFoundError(f"{self.ckpt_dir}: no valid checkpoint to resume from")
            if self.step > self.cfg.train.steps:
                raise ValueError(
                    f"train.steps = {self.cfg.train.steps}: the run is at step {self.step} already and "
                    "cannot be shortened; give a larger train.steps to train further (nothing was changed)"
                )
            self.final = found[2].get("final") if self.step >= self.cfg.train.steps else None
            if self.dist.is_main:  # overrides given to `nrf resume` become part of the run's config
                self._cut_log(found[2])
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
        self.loop.initialize(self.streams.init_rows(self.data.train.shape[0], self.cfg.model.init_batch))
        broadcast_module(self.objective, self.dist)
        self.save()

    def fit(self, resume: bool = False) -> dict[str, float]:
        """Train to ``train.steps``; returns the final evaluation metrics."""
        from tqdm.auto import tqdm

        try:
            self._start(resume)
            self._open_tensorboard()
            cfg = self.cfg.train
            shown = cfg.progress and self.dist.is_main and stderr_is_terminal()
            self._bar = tqdm(total=cfg.steps, initial=self.step, disable=not shown, desc=self.cfg.run.name,
                             dynamic_ncols=True)  # fmt: skip
            try:
                self.loop.run([self])
            finally:
                self._bar.close()
                self._bar = None
            if self.final is None:  # a run resumed after its final evaluation does not repeat it
                self.final = self.evaluate()
                self.save()
            final = self.final
            self._write_summary("time budget" if self.stopped_early else "completed", final)
            self.loop.finish()  # the model kept: the parameter average when train.ema is set
        finally:
            if self._tb is not None:
                self._tb.close()
                self._tb = None
            self.lock.release()
        return final


_SHOWN = ("loss", "energy_data", "energy_samples")
