"""Train one nrf config inside a benchmark (the config written beside its run folder, the
run folder replaced, evaluators chosen by the benchmark, the fit's wall time returned), and
the kNN KL curves over training of the BEAM benchmarks."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w
import torch

from nrf import plots
from nrf.metrics import knn_kl_pair
from nrf.training.config import load_config
from nrf.training.evaluation import Evaluator
from nrf.training.run import _prepare
from nrf.training.trainer import Trainer


def choose(spec: str, known: list[str], option: str) -> list[str]:
    """The comma-separated names of ``spec`` (an option's value), each one of ``known``;
    a ValueError naming ``option`` otherwise."""
    wanted = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [w for w in wanted if w not in known]
    if unknown or not wanted:
        raise ValueError(f"{option}: unknown {unknown or spec!r}; choose from {known}")
    return wanted


def train_config(
    cfg_dict: dict[str, Any],
    out: Path,
    name: str,
    threads: int,
    data: Sequence[str],
    *,
    base: Path | None = None,
    evaluators: Sequence[Evaluator] = (),
    eval_every: int = 0,
    checkpoint_every: int | None = None,
    log_every: int | None = None,
) -> tuple[Trainer, float]:
    """Fit ``cfg_dict`` (or the shipped config ``base`` with ``cfg_dict``'s ``train.steps``
    and ``run.seed``) on the data of the overrides ``data`` (e.g. ``['data.name="npy"',
    ...]``; applied after the shipped config and its ``train.steps``, so they win), on the CPU
    with ``threads`` threads, into ``out/name``; ``evaluators`` run every
    ``eval_every`` updates (0: never) and at the end, in place of the config's. Returns the
    trainer and the seconds its fit took (evaluations included). Checkpoints: every
    ``checkpoint_every`` updates (default a fifth of the fit); log records every ``log_every``
    (default a fiftieth)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.toml"
    path.write_text(tomli_w.dumps(cfg_dict))
    steps = cfg_dict["train"]["steps"]
    overrides = [
        f"run.out_dir={str(out)!r}", f"run.name={name!r}", f"run.threads={threads}", 'run.device="cpu"',
        *data, f"train.eval_every={eval_every}", "train.evaluators=[]", "train.progress=false",
        f"train.checkpoint_every={checkpoint_every or max(1, steps // 5)}",
        f"train.log_every={log_every or max(1, steps // 50)}", f"run.seed={cfg_dict['run']['seed']}",
    ]  # fmt: skip
    cfg = (
        load_config(path, overrides)
        if base is None
        else load_config(base, [f"train.steps={steps}", *overrides])
    )
    run_dir = out / cfg.run.name
    shutil.rmtree(run_dir, ignore_errors=True)
    trainer = _prepare(cfg, run_dir)
    trainer.evaluators = list(evaluators)
    start = time.perf_counter()
    trainer.fit()
    return trainer, time.perf_counter() - start


Points = list[tuple[float, float, float]]


class KLCurve:
    """The kNN KL of a model's samples against held-out rows over training (BEAM Fig. 4-5):
    points ``(epoch, forward, reverse)``, and the seconds spent (to subtract from a fit's
    time). ``draw(model, n, generator)`` makes the ``n`` samples; ``pick`` turns the
    objective the trainer evaluates into that model."""

    def __init__(
        self,
        held_out: torch.Tensor,
        n: int,
        per_epoch: int,
        draw: Callable[[Any, int, torch.Generator], torch.Tensor],
        pick: Callable[[Any], Any] = lambda objective: objective,
    ) -> None:
        self.held_out, self.n, self.per_epoch, self.draw, self.pick = held_out[:n], n, per_epoch, draw, pick
        self.points: Points = []
        self.seconds = 0.0

    def score(self, model: Any, epoch: float, generator: torch.Generator) -> dict[str, float]:
        start = time.perf_counter()
        with torch.no_grad():
            samples = self.draw(model, self.n, generator).reshape(self.n, -1).float()
        kl = knn_kl_pair(samples, self.held_out, k=1, ties="drop")
        self.points.append((epoch, float(kl.forward), float(kl.reverse)))
        self.seconds += time.perf_counter() - start
        return {"kl_forward": float(kl.forward), "kl_reverse": float(kl.reverse)}

    def evaluator(self) -> Evaluator:
        def evaluate(objective: Any, step: int, run_dir: Path, gen: torch.Generator) -> dict[str, float]:
            was = objective.training
            objective.eval()
            try:
                return self.score(self.pick(objective), step / self.per_epoch, gen)
            finally:
                objective.train(was)

        return evaluate


def kl_curve_figure(curves: dict[str, dict[str, Points]], path: Path, switch: float | None = None) -> Path:
    """One row per data set, forward and reverse KL against epochs, one line per model
    (``curves[data][label]``); a dashed line at epoch ``switch`` (the adversary's start)."""
    fig, axes = plots.new_figure(2, len(curves), size=3.6)
    for row, (name, per_model) in enumerate(curves.items()):
        for col, (which, title) in enumerate(((1, "KL(data‖model)"), (2, "KL(model‖data)"))):
            ax = axes[row, col]
            for label, points in per_model.items():
                pts = np.asarray(points)
                ax.plot(pts[:, 0], pts[:, which], marker=".", label=label)
            if switch is not None:
                ax.axvline(switch, color="gray", ls="--", lw=0.8)
            ax.set_title(f"{name}: {title}", fontsize=9)
            ax.set_xlabel("epoch", fontsize=8)
            if col == 0:
                ax.legend(fontsize=6)
    return plots.save(fig, path)
