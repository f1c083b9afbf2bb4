"""One training loop for every objective.

The trainer owns the optimizers (one per parameter group of the objective, each with its
own learning rate), the data order, the random streams, logging (tqdm, ``metrics.jsonl``,
TensorBoard when installed), evaluation hooks, checkpoints and divergence recovery.

Divergence: a non-finite loss, gradient or metric, an energy beyond
``divergence.max_abs_energy``, or samples whose mean energy exceeds the data's by more
than ``divergence.max_energy_gap`` for ``patience`` consecutive steps, triggers a
rollback to the last good checkpoint with every learning rate multiplied by
``lr_factor``; after ``max_rollbacks`` rollbacks the run stops with
:class:`TrainingDiverged` (``summary.json`` says ``"diverged"``).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nrf.objectives import Objective
from nrf.training import checkpoint as ckpt
from nrf.training.config import Config, ConfigError, OptimizerSection, dumps
from nrf.training.data import TrainingData
from nrf.training.distributed import (
    SINGLE,
    DistInfo,
    any_rank,
    average_gradients,
    average_metrics,
    broadcast_module,
    gather,
)
from nrf.training.evaluation import Evaluator, default_evaluators


class DivergenceError(RuntimeError):
    """Raised inside a step when training has diverged (caught by the trainer)."""


class TrainingDiverged(RuntimeError):
    """Training diverged more often than ``divergence.max_rollbacks`` allows."""


def make_optimizer(params: list[nn.Parameter], section: OptimizerSection) -> torch.optim.Optimizer:
    """The optimizer of one parameter group.

    PyTorch's fused Adam kernel is about twice as fast on small networks, but a run resumed
    from a checkpoint with it did not continue bit for bit (torch 2.13, CPU), so the
    default per-tensor implementation is used: exact resumption comes first.
    """
    betas = (section.betas[0], section.betas[1])
    if section.name in ("adam", "adamw"):
        cls = torch.optim.Adam if section.name == "adam" else torch.optim.AdamW
        return cls(params, lr=section.lr, betas=betas, weight_decay=section.weight_decay)
    return torch.optim.SGD(
        params, lr=section.lr, momentum=section.momentum, weight_decay=section.weight_decay
    )


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
    if not bool(torch.isfinite(loss)):
        raise DivergenceError(f"non-finite {group} loss ({float(loss.detach())}) at step {step}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    average_gradients(params, dist)
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    if any(p.grad is not None and not bool(torch.isfinite(p.grad).all()) for p in params):
        raise DivergenceError(f"non-finite {group} gradient at step {step}")
    optimizer.step()


class _Context:
    """The :class:`~nrf.objectives.StepContext` handed to objectives."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.generator = trainer.gen_sampler
        self.step = trainer.step

    def update(self, group: str, loss: torch.Tensor) -> None:
        t = self.trainer
        if group not in t.optimizers:
            raise KeyError(
                f"objective updated unknown optimizer group {group!r} (known: {sorted(t.optimizers)})"
            )
        optimizer_step(t.optimizers[group], t.groups[group], loss, group=group, step=t.step,
                       grad_clip=t.cfg.train.grad_clip, dist=t.dist)  # fmt: skip


class Trainer:
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
        self.evaluators = list(default_evaluators(data) if evaluators is None else evaluators)
        self.objective.to(self.device)
        if objective.n_models > 1 and dist.world_size > 1:
            raise ConfigError("model.n_models: batched models and several processes cannot be combined yet")
        self.groups = objective.optimizer_groups()
        missing = sorted(set(self.groups) - set(cfg.optim))
        if missing:
            raise ConfigError(
                f"optim.{missing[0]}: the {cfg.objective.name!r} objective needs this optimizer table"
            )
        unused = sorted(set(cfg.optim) - set(self.groups))
        if unused:
            raise ConfigError(
                f"optim.{unused[0]}: not a parameter group of {cfg.objective.name!r} ({sorted(self.groups)})"
            )
        self.optimizers = {g: make_optimizer(p, cfg.optim[g]) for g, p in self.groups.items()}
        seed = cfg.run.seed
        self.gen_sampler = torch.Generator(device=self.device).manual_seed(seed * 1000 + 1 + dist.rank)
        self.gen_data = torch.Generator().manual_seed(seed * 1000 + 2)
        self.step = 0
        self.perm: torch.Tensor | None = None
        self.pos = 0
        self.epoch = 0
        self.lr_scale = 1.0
        self.rollbacks = 0
        self.gap_strikes = 0
        self.best: float | None = None
        self.started = time.time()
        self.elapsed_before = 0.0
        self._tb: Any = None
        self.ckpt_dir = self.run_dir / "checkpoints"

    # --- data ----------------------------------------------------------------------------

    def _next_batch(self) -> torch.Tensor:
        """The next batch; with ``n_models`` batched models, one block of rows per model, each
        model going through the data in its own order."""
        n = self.data.train.shape[0]
        bs = min(self.cfg.train.batch_size, n)
        models = self.objective.n_models
        if self.perm is None or self.pos + bs > n:
            if self.perm is not None:
                self.epoch += 1
            self.perm = torch.stack([torch.randperm(n, generator=self.gen_data) for _ in range(models)])
            self.pos = 0
        idx = self.perm[:, self.pos : self.pos + bs].reshape(-1)
        self.pos += bs
        if self.dist.world_size > 1:
            idx = idx[self.dist.rank :: self.dist.world_size]
        return self.data.train[idx].to(self.device)

    # --- state ---------------------------------------------------------------------------

    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors = {f"model/{k}": v for k, v in self.objective.state_dict().items()}
        meta: dict[str, Any] = {"optim": {}}
        for g, opt in self.optimizers.items():
            t, m = ckpt.optimizer_to_flat(f"optim/{g}", opt)
            tensors.update(t)
            meta["optim"][g] = m
        ranks = gather(self._rank_state(), self.dist)
        meta["ranks"] = []
        for r, (rank_tensors, rank_meta) in enumerate(ranks):
            tensors.update({f"rank{r}/{k}": v for k, v in rank_tensors.items()})
            meta["ranks"].append(rank_meta)
        if self.perm is not None:
            tensors["data/perm"] = self.perm
        tensors["rng/data"] = self.gen_data.get_state()
        meta.update(
            step=self.step, epoch=self.epoch, pos=self.pos, lr_scale=self.lr_scale, rollbacks=self.rollbacks,
            gap_strikes=self.gap_strikes, best=self.best, world_size=self.dist.world_size,
            elapsed=self.elapsed_before + time.time() - self.started,
        )  # fmt: skip
        return tensors, meta

    def _rank_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors: dict[str, torch.Tensor] = {"rng/sampler": self.gen_sampler.get_state().cpu()}
        meta: dict[str, Any] = {}
        for k, v in self.objective.extra_state().items():
            if isinstance(v, torch.Tensor):
                tensors[f"extra/{k}"] = v.cpu()
            else:
                meta[k] = v
        return tensors, meta

    def _restore(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        if int(meta.get("world_size", 1)) != self.dist.world_size:
            raise ValueError(
                f"checkpoint was written by {meta.get('world_size')} process(es); resume with the same number"
            )
        model = {k[len("model/") :]: v for k, v in tensors.items() if k.startswith("model/")}
        self.objective.load_state_dict(model)
        self.objective.to(self.device)
        for g, opt in self.optimizers.items():
            ckpt.optimizer_from_flat(f"optim/{g}", opt, tensors, meta["optim"][g])
        prefix = f"rank{self.dist.rank}/"
        mine = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        self.gen_sampler.set_state(mine["rng/sampler"].to(self.gen_sampler.device))
        extra: dict[str, Any] = dict(meta["ranks"][self.dist.rank])
        extra.update(
            {k[len("extra/") :]: v.to(self.device) for k, v in mine.items() if k.startswith("extra/")}
        )
        self.objective.load_extra_state(extra)
        self.gen_data.set_state(tensors["rng/data"])
        self.perm = tensors.get("data/perm")
        self.step, self.epoch, self.pos = int(meta["step"]), int(meta["epoch"]), int(meta["pos"])
        self.lr_scale, self.rollbacks = float(meta["lr_scale"]), int(meta["rollbacks"])
        self.gap_strikes, self.best = int(meta["gap_strikes"]), meta.get("best")
        self.elapsed_before = float(meta.get("elapsed", 0.0))
        self.started = time.time()
        self._apply_lr()

    def _apply_lr(self) -> None:
        for g, opt in self.optimizers.items():
            for pg in opt.param_groups:
                pg["lr"] = self.cfg.optim[g].lr * self.lr_scale

    def save(self, folder: Path | None = None) -> Path | None:
        tensors, meta = self._state()
        if not self.dist.is_main:
            return None
        path = ckpt.save_checkpoint(folder or ckpt.step_dir(self.ckpt_dir, self.step), tensors, meta)
        if folder is None:
            ckpt.prune(self.ckpt_dir, self.cfg.train.keep_last)
        self._write_summary("running")
        return path

    # --- logging -------------------------------------------------------------------------

    def _log(self, record: dict[str, Any]) -> None:
        if not self.dist.is_main:
            return
        record = {"time": round(self.elapsed_before + time.time() - self.started, 3), **record}
        with open(self.run_dir / "metrics.jsonl", "a") as f:
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
            "epoch": self.epoch, "rollbacks": self.rollbacks, "lr_scale": self.lr_scale,
            "wall_seconds": round(self.elapsed_before + time.time() - self.started, 2),
            "final": final or {}, "best": self.best,
        }  # fmt: skip
        tmp = self.run_dir / "summary.json.tmp"
        tmp.write_text(json.dumps(summary, indent=1))
        os.replace(tmp, self.run_dir / "summary.json")

    def _open_tensorboard(self) -> None:
        if not self.dist.is_main:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional
            return
        self._tb = SummaryWriter(str(self.run_dir / "tensorboard"))

    # --- divergence ----------------------------------------------------------------------

    def _check_metrics(self, metrics: dict[str, float]) -> None:
        div = self.cfg.divergence
        for k, v in metrics.items():
            if not math.isfinite(v):
                raise DivergenceError(f"non-finite metric {k} = {v} at step {self.step}")
        energies = {k: v for k, v in metrics.items() if k.startswith("energy_")}
        for k, v in energies.items():
            if abs(v) > div.max_abs_energy:
                raise DivergenceError(f"runaway energy: |{k}| = {abs(v):.3g} > {div.max_abs_energy:.3g}")
        if div.max_energy_gap is not None and {"energy_data", "energy_samples"} <= set(energies):
            gap = energies["energy_samples"] - energies["energy_data"]
            self.gap_strikes = self.gap_strikes + 1 if gap > div.max_energy_gap else 0
            if self.gap_strikes >= div.patience:
                raise DivergenceError(
                    f"runaway energies: samples {gap:.3g} above data for {self.gap_strikes} steps "
                    f"(bound {div.max_energy_gap:.3g})"
                )

    def _rollback(self, reason: str) -> None:
        div = self.cfg.divergence
        failed_step, rollbacks, lr_scale = self.step, self.rollbacks + 1, self.lr_scale * div.lr_factor
        if not div.enabled or rollbacks > div.max_rollbacks:
            self._log({"phase": "event", "step": failed_step, "event": "diverged", "message": reason})
            self._write_summary("diverged")
            raise TrainingDiverged(
                f"training diverged at step {failed_step}: {reason} "
                f"(after {self.rollbacks} rollback(s); divergence.max_rollbacks = {div.max_rollbacks})"
            )
        found = ckpt.latest_valid(self.ckpt_dir)
        if found is None:
            raise TrainingDiverged(
                f"training diverged at step {failed_step} ({reason}) and no checkpoint is left"
            )
        folder, tensors, meta = found
        self._restore(tensors, meta)
        self.rollbacks, self.lr_scale, self.gap_strikes = rollbacks, lr_scale, 0
        self._apply_lr()
        message = (
            f"{reason}; rolled back to step {self.step} ({folder.name}); learning rates x{lr_scale:g} "
            f"(rollback {rollbacks} of at most {div.max_rollbacks})"
        )
        self._log({"phase": "event", "step": failed_step, "event": "rollback", "message": message})
        if self.dist.is_main:
            print(f"nrf: {message}")

    # --- evaluation ----------------------------------------------------------------------

    def evaluate(self) -> dict[str, float]:
        """Run the evaluators (rank 0), log their metrics, keep ``checkpoints/best``."""
        metrics: dict[str, float] = {}
        improved = False
        if self.dist.is_main and self.evaluators:
            gen = torch.Generator(device=self.device).manual_seed(self.cfg.run.seed * 7919 + self.step)
            self.objective.eval()
            try:
                for evaluator in self.evaluators:
                    metrics.update(evaluator(self.objective, self.step, self.run_dir, gen))
            finally:
                self.objective.train()
            self._log({"phase": "eval", "step": self.step, "epoch": self.epoch, **metrics})
            key, mode = self.cfg.train.best_metric, self.cfg.train.best_mode
            if key is not None and key in metrics:
                value = metrics[key]
                improved = self.best is None or (value > self.best if mode == "max" else value < self.best)
                if improved:
                    self.best = value
        if any_rank(improved, self.dist):  # every rank joins the save (it gathers their states)
            self.save(self.ckpt_dir / "best")
        return metrics

    # --- the loop ------------------------------------------------------------------------

    def _start(self, resume: bool) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            found = ckpt.latest_valid(self.ckpt_dir)
            if found is None:
                raise FileNotFoundError(f"{self.ckpt_dir}: no valid checkpoint to resume from")
            self._restore(found[1], found[2])
            if self.dist.is_main:  # overrides given to `nrf resume` become part of the run's config
                (self.run_dir / "config.toml").write_text(dumps(self.cfg))
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
            (self.run_dir / "config.toml").write_text(dumps(self.cfg))
            (self.run_dir / "plots").mkdir(exist_ok=True)
            metrics_file = self.run_dir / "metrics.jsonl"
            if metrics_file.exists():
                metrics_file.unlink()
        init = self.data.train[: self.cfg.model.init_batch].to(self.device)
        self.objective.initialize(self.objective.for_every_model(init))  # every model on the same rows
        broadcast_module(self.objective, self.dist)
        self.save()

    def fit(self, resume: bool = False) -> dict[str, float]:
        """Train to ``train.steps``; returns the final evaluation metrics."""
        from tqdm.auto import tqdm

        self._start(resume)
        self._open_tensorboard()
        cfg = self.cfg.train
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not (cfg.progress and self.dist.is_main),
                   desc=self.cfg.run.name, dynamic_ncols=True)  # fmt: skip
        window: dict[str, list[float]] = {}
        try:
            while self.step < cfg.steps:
                batch = self._next_batch()
                try:
                    ctx = _Context(self)
                    metrics = self.objective.training_step(batch, ctx)
                    metrics = average_metrics(metrics, self.dist)
                    self._check_metrics(metrics)
                    diverged = None
                except DivergenceError as exc:
                    diverged = str(exc)
                if any_rank(diverged is not None, self.dist):
                    self._rollback(diverged or "divergence on another rank")
                    bar.n = self.step
                    window.clear()
                    continue
                self.step += 1
                bar.update(1)
                for k, v in metrics.items():
                    window.setdefault(k, []).append(v)
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    means = {k: sum(v) / len(v) for k, v in window.items()}
                    lrs = {f"lr_{g}": opt.param_groups[0]["lr"] for g, opt in self.optimizers.items()}
                    self._log({"phase": "train", "step": self.step, "epoch": self.epoch, **means, **lrs})
                    bar.set_postfix({k: f"{v:.3g}" for k, v in means.items() if k in _SHOWN})
                    window.clear()
                if cfg.eval_every and self.step % cfg.eval_every == 0 and self.step < cfg.steps:
                    self.evaluate()
                if self.step % cfg.checkpoint_every == 0 and self.step < cfg.steps:
                    self.save()
        finally:
            bar.close()
        final = self.evaluate()
        self.save()
        self._write_summary("completed", final)
        if self._tb is not None:
            self._tb.close()
        return final


_SHOWN = ("loss", "energy_data", "energy_samples")
