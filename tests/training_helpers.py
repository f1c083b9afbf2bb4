"""A tiny, fast training config for the trainer tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from nrf.data import Batch
from nrf.training.loop import Loop

TINY = """
[run]
name = "{name}"
out_dir = "{out}"
seed = 3
device = "cpu"
threads = 1

[data]
name = "{data}"
{data_extra}

[model]
energy = "gmm"
energy_args = {{ hidden = [16, 16] }}
init_batch = 200

[objective]
name = "{objective}"
args = {{ start = "data" }}

[sampler]
name = "langevin"
step_size = 0.01
steps = 3
noise_scale = {noise}

[optim.energy]
name = "{opt}"
lr = {lr}

[train]
steps = {steps}
batch_size = 64
log_every = 5
eval_every = {eval_every}
checkpoint_every = {ckpt}
keep_last = 2
progress = false

[divergence]
max_abs_energy = {max_abs}
lr_factor = {lr_factor}
max_rollbacks = {max_rollbacks}
"""


def write_config(tmp: Path, **overrides: object) -> Path:
    values: dict[str, object] = {
        "name": "tiny", "out": str(tmp / "runs"), "data": "gmm32", "data_extra": "", "objective": "cd",
        "noise": 0.05, "opt": "adam", "lr": 1e-3, "steps": 40, "eval_every": 20, "ckpt": 10,
        "max_abs": 1e4, "lr_factor": 0.5, "max_rollbacks": 3,
    }  # fmt: skip
    values.update(overrides)
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / f"{values['name']}.toml"
    path.write_text(TINY.format(**values))
    return path


def straight_and_resumed(objective: Any, rows: torch.Tensor) -> tuple[Loop, Loop]:
    """Eight updates of ``objective()`` in one go, and four, a checkpoint, and four more in a
    fresh loop restored from it."""
    straight = loop_of(objective(), rows, 8)
    straight.run()
    first = loop_of(objective(), rows, 8)
    first.run(until=4)
    tensors, meta = first.checkpoint()
    second = loop_of(objective(), rows, 8)
    second.restore_checkpoint(tensors, meta)
    second.run()
    return straight, second


def loop_of(objective: Any, rows: torch.Tensor, steps: int) -> Loop:
    return Loop(
        objective, Batch(rows), {"energy": {"name": "adam", "lr": 1e-2}}, batch_size=32, steps=steps,
        generator=torch.Generator().manual_seed(1), data_generator=torch.Generator().manual_seed(2),
    )  # fmt: skip


def short_trajectory_run(tmp: Path, config: str, *extra: str) -> tuple[Path, dict[str, float]]:
    """A repository trajectory config trained for 6 updates on 20 short bouncing-ball
    trajectories (its network and objective unchanged); returns the run folder and the
    final metrics."""
    from nrf.training.config import load_config
    from nrf.training.run import train

    root = Path(__file__).resolve().parents[1]
    overrides = [f'run.out_dir="{tmp}"', "run.threads=1", "train.steps=6", "train.checkpoint_every=6",
                 "data.trajectories=20", "data.trajectory_steps=40", "model.init_batch=200",
                 "train.max_seconds=~", "train.progress=false", *extra]  # fmt: skip
    return train(load_config(root / "configs" / config, overrides))
