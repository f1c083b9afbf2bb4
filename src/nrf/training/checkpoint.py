"""Checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint is a folder ``checkpoints/step-0000123/`` holding ``tensors.safetensors``
and ``state.json``; ``state.json`` records the sha256 of the tensor file, so a truncated
or altered checkpoint is refused. Folders are written atomically: files go into a
temporary folder beside the final one, are fsynced, and the folder is renamed into place
(then the parent folder is fsynced), so a crash at any moment leaves either the previous
checkpoint set or the new one, never a half-written checkpoint under a final name.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

TENSORS = "tensors.safetensors"
STATE = "state.json"
FORMAT = "nrf-checkpoint-1"


class CheckpointError(ValueError):
    """A checkpoint is missing, truncated, altered or of another format."""


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(
    path: str | os.PathLike[str], tensors: dict[str, torch.Tensor], state: dict[str, Any]
) -> Path:
    """Write ``tensors`` and JSON-able ``state`` as the checkpoint folder ``path`` (replacing it)."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        flat = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
        save_file(flat, str(tmp / TENSORS))
        record = {"format": FORMAT, "sha256": _sha256(tmp / TENSORS), **state}
        (tmp / STATE).write_text(json.dumps(record, indent=1, sort_keys=True))
        for name in (TENSORS, STATE):
            with open(tmp / name, "rb") as f:
                os.fsync(f.fileno())
        if final.exists():
            old = final.parent / f".{final.name}.old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_dir(final.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint folder; raise :class:`CheckpointError` if it is incomplete or altered."""
    folder = Path(path)
    if not (folder / STATE).is_file() or not (folder / TENSORS).is_file():
        raise CheckpointError(f"{folder}: not a checkpoint (needs {STATE} and {TENSORS})")
    try:
        state = json.loads((folder / STATE).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{folder / STATE}: unreadable ({exc})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else state
        raise CheckpointError(f"{folder}: unknown checkpoint format {found!r}")
    actual = _sha256(folder / TENSORS)
    if actual != state.get("sha256"):
        raise CheckpointError(
            f"{folder / TENSORS}: content does not match the sha256 recorded in {STATE} "
            "(truncated or altered); refusing to load it"
        )
    try:
        tensors = load_file(str(folder / TENSORS))
    except Exception as exc:  # pragma: no cover - the hash check catches damage first
        raise CheckpointError(f"{folder / TENSORS}: unreadable ({exc})") from None
    return tensors, state


def step_dir(checkpoints: Path, step: int) -> Path:
    return checkpoints / f"step-{step:08d}"


def list_checkpoints(checkpoints: str | os.PathLike[str]) -> list[Path]:
    """Step checkpoint folders, oldest first (temporary and ``best`` folders excluded)."""
    root = Path(checkpoints)
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("step-*") if p.is_dir() and p.name[5:].isdigit())


def latest_valid(
    checkpoints: str | os.PathLike[str],
) -> tuple[Path, dict[str, torch.Tensor], dict[str, Any]] | None:
    """The newest checkpoint that loads; damaged newer ones are skipped (and reported by the caller)."""
    for folder in reversed(list_checkpoints(checkpoints)):
        try:
            tensors, state = load_checkpoint(folder)
        except CheckpointError:
            continue
        return folder, tensors, state
    return None


def prune(checkpoints: str | os.PathLike[str], keep_last: int) -> None:
    """Delete all but the newest ``keep_last`` step checkpoints."""
    for folder in list_checkpoints(checkpoints)[:-keep_last]:
        shutil.rmtree(folder, ignore_errors=True)


# --- optimizer state <-> (tensors, JSON) ---------------------------------------------------


def optimizer_to_flat(
    prefix: str, opt: torch.optim.Optimizer
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer's state_dict into tensors (keyed by ``prefix``) and JSON."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, entry in sd["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}/state/{idx}/{key}"] = value
            else:
                scalars.setdefault(str(idx), {})[key] = value
    groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def optimizer_from_flat(
    prefix: str, opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> None:
    """Inverse of :func:`optimizer_to_flat`."""
    state: dict[int, dict[str, Any]] = {}
    head = f"{prefix}/state/"
    for key, value in tensors.items():
        if key.startswith(head):
            idx, name = key[len(head) :].split("/", 1)
            state.setdefault(int(idx), {})[name] = value
    for idx, entry in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(entry)
    groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in meta["param_groups"]]
    opt.load_state_dict({"state": state, "param_groups": groups})
