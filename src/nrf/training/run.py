"""Runs from configs: start, resume, and load a trained run for sampling and scoring."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch

from nrf.objectives import Objective
from nrf.training import checkpoint as ckpt
from nrf.training.build import build_objective
from nrf.training.config import Config, load_config
from nrf.training.data import FILES, load_training_data
from nrf.training.distributed import init_from_env, shutdown
from nrf.training.loop import ParameterAverage, Streams
from nrf.training.rundir import RunDir
from nrf.training.trainer import Trainer


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda`` or ``auto`` (CUDA when available)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA device is available")
    return torch.device(name)


def run_dir_of(cfg: Config) -> Path:
    return Path(cfg.run.out_dir) / cfg.run.name


# The presets that are MLPs over flattened rows: any row shape fits them.
SHAPE_FREE_PRESETS = ("gmm", "kdd", "mnist")


def infer_event_shape(cfg: Config, rows: tuple[int, ...]) -> None:
    """For a user's own file (``data.name = "npy"`` or ``"csv"``) and an MLP preset
    (``gmm``, ``kdd``, ``mnist``), set ``model.energy_args.event_shape`` to the shape of the
    file's rows unless the config gives it; the run's ``config.toml`` then records it."""
    if cfg.data.name not in FILES or cfg.model.energy not in SHAPE_FREE_PRESETS:
        return
    if "event_shape" not in cfg.model.energy_args:
        cfg.model.energy_args = {**cfg.model.energy_args, "event_shape": list(rows)}


def _prepare(cfg: Config, run_dir: Path) -> Trainer:
    torch.set_num_threads(cfg.run.threads)
    device = resolve_device(cfg.run.device)
    info = init_from_env(device)
    if device.type == "cuda" and info.world_size > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    torch.manual_seed(Streams.from_user_seed(cfg.run.seed).seed)  # networks; the run has its own streams
    data = load_training_data(cfg.data, cfg.run.seed)
    infer_event_shape(cfg, tuple(data.train.shape[1:]))
    objective = build_objective(cfg)
    shape = getattr(objective.energy, "event_shape", None)
    if shape is not None and tuple(data.train.shape[1:]) != tuple(shape):
        flat = int(torch.tensor(shape).prod()) if shape else 0
        if not (data.train.dim() == 2 and data.train.shape[1] == flat):
            raise ValueError(
                f"data of shape {tuple(data.train.shape[1:])} per sample does not match the model's "
                f"input shape {tuple(shape)} (model.energy = {cfg.model.energy!r})"
            )
    return Trainer(objective, data, cfg, run_dir, device=device, dist=info)


def train(cfg: Config) -> tuple[Path, dict[str, float]]:
    """Start a new run in ``run.out_dir / run.name``; refuses a folder that holds a run
    (or one that another process is using)."""
    run_dir = run_dir_of(cfg)
    trainer = _prepare(cfg, run_dir)
    return run_dir, _fit(trainer, resume=False)


def resume(run_dir: str | os.PathLike[str], overrides: list[str] | None = None) -> dict[str, float]:
    """Continue the run in ``run_dir`` from its newest valid checkpoint."""
    folder = Path(run_dir)
    config = RunDir(folder).config
    if not folder.exists():
        raise FileNotFoundError(f"{folder}: no such run directory")
    if not config.is_file():
        raise FileNotFoundError(f"{folder}: not a run directory (no config.toml)")
    cfg = load_config(config, overrides, run_directory=True)
    trainer = _prepare(cfg, folder)
    return _fit(trainer, resume=True)


def _fit(trainer: Trainer, *, resume: bool) -> dict[str, float]:
    """Run the trainer, then leave the process group (an orderly end with several ranks)."""
    completed = False
    try:
        result = trainer.fit(resume=resume)
        completed = True
        return result
    finally:
        shutdown(trainer.dist, completed=completed)


def _model_problem(tensors: dict[str, torch.Tensor], meta: dict[str, Any], n_ema: int) -> str | None:
    """What a checkpoint lacks to give a model (:func:`load_run` needs the networks, the
    first process's extra state and, with a parameter average, its ``n_ema`` tensors)."""
    ranks = meta.get("ranks")
    if not isinstance(ranks, list) or not ranks or not isinstance(ranks[0], dict):
        return ckpt.bad_field("ranks", "one entry per process", ranks)
    if not any(k.startswith("model/") for k in tensors):
        return "no model/ tensors"
    if "ema" in meta:
        ema = meta["ema"]
        if not (isinstance(ema, dict) and isinstance(ema.get("updates"), int)):
            return ckpt.bad_field("ema", "the parameter average's update count", ema)
        missing = [i for i in range(n_ema) if f"ema/{i}" not in tensors]
        if missing:
            return f"tensor 'ema/{missing[0]}' missing"
    return None


def load_run(run_dir: str | os.PathLike[str], which: str = "best", device: str = "cpu") -> Objective:
    """The trained objective of a run: ``which`` = ``"best"`` (falls back to the latest) or ``"latest"``."""
    layout = RunDir(Path(run_dir))
    folder = layout.root
    if not folder.exists():
        raise FileNotFoundError(f"{folder}: no such run directory")
    if not layout.config.is_file():
        raise FileNotFoundError(f"{folder}: not a run directory (no config.toml)")
    cfg = load_config(layout.config, run_directory=True)
    objective = build_objective(cfg)
    n_ema = len(list(objective.energy.parameters()))

    def problem(folder: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> str | None:
        return _model_problem(tensors, meta, n_ema)

    found = None
    if which == "best" and layout.best.is_dir():
        try:
            tensors, meta = ckpt.load_checkpoint(layout.best)
            reason = problem(layout.best, tensors, meta)
            if reason is not None:
                raise ckpt.CheckpointError(reason)
            found = (layout.best, tensors, meta)
        except ckpt.CheckpointError as exc:
            warnings.warn(f"skipping {layout.best}: {exc}; using the latest", UserWarning, stacklevel=2)
    if found is None:
        found = ckpt.latest_valid(layout.checkpoints, problem)
    if found is None:
        raise FileNotFoundError(f"{layout.checkpoints}: no valid checkpoint")
    _, tensors, meta = found
    try:
        objective.load_state_dict(
            {k[len("model/") :]: v for k, v in tensors.items() if k.startswith("model/")}
        )
    except RuntimeError as exc:
        raise ValueError(
            f"{folder}: the checkpoint does not fit the networks its config.toml builds (written by an nrf "
            f"version whose ensemble members shared one generator?): {str(exc).splitlines()[0]}"
        ) from None
    extra: dict[str, object] = dict(meta["ranks"][0])
    extra.update({k[len("rank0/extra/") :]: v for k, v in tensors.items() if k.startswith("rank0/extra/")})
    objective.load_extra_state(extra)
    if "ema" in meta:  # the model kept is the parameter average of the energy
        ema = ParameterAverage(objective.energy, cfg.train.ema or 0.5)
        ema.restore(tensors, meta["ema"])
        ema.copy_to(objective.energy)
    objective.to(resolve_device(device))
    objective.eval()
    return objective
