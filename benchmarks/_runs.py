"""Train one nrf config inside a benchmark: the config written beside its run folder, the
run folder replaced, evaluators chosen by the benchmark, the fit's wall time returned."""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tomli_w

from nrf.training.config import load_config
from nrf.training.evaluation import Evaluator
from nrf.training.run import _prepare
from nrf.training.trainer import Trainer


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
) -> tuple[Trainer, float]:
    """Fit ``cfg_dict`` (or the shipped config ``base`` with ``cfg_dict``'s ``train.steps``
    and ``run.seed``) on the data of the overrides ``data`` (e.g. ``['data.name="npy"',
    ...]``), on the CPU with ``threads`` threads, into ``out/name``; ``evaluators`` run every
    ``eval_every`` updates (0: never) and at the end. Returns the trainer and the seconds
    its fit took (evaluations included). Checkpoints: every ``checkpoint_every`` updates
    (default a fifth of the fit)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.toml"
    path.write_text(tomli_w.dumps(cfg_dict))
    steps = cfg_dict["train"]["steps"]
    overrides = [
        f"run.out_dir={str(out)!r}", f"run.name={name!r}", f"run.threads={threads}", 'run.device="cpu"',
        *data, f"train.eval_every={eval_every}", "train.progress=false",
        f"train.checkpoint_every={checkpoint_every or max(1, steps // 5)}",
        f"train.log_every={max(1, steps // 50)}", f"run.seed={cfg_dict['run']['seed']}",
    ]  # fmt: skip
    cfg = (
        load_config(path, overrides)
        if base is None
        else load_config(base, [*overrides, f"train.steps={steps}"])
    )
    run_dir = out / cfg.run.name
    shutil.rmtree(run_dir, ignore_errors=True)
    trainer = _prepare(cfg, run_dir)
    trainer.evaluators = list(evaluators)
    start = time.perf_counter()
    trainer.fit()
    return trainer, time.perf_counter() - start
