"""Checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint is a folder ``checkpoints/step-0000123/`` holding ``tensors.safetensors``
and ``state.json``. ``state.json`` records the sha256 of the tensor file (``sha256``) and
the sha256 of its own canonical JSON (``json_sha256``: sorted keys, no spaces, computed
without that field), so a truncated or altered tensor file *or* an edited ``state.json``
(a changed ``step``, ``lr_scale`` or ``contamination``) is refused.

Folders are written atomically: files go into a temporary folder ``.NAME.XXXX`` beside
the final one, are fsynced, and the folder is renamed into place (then the parent folder
is fsynced), so a crash at any moment leaves either the previous checkpoint or the new
one under the final name, never a half-written one. Replacing an existing checkpoint
moves it aside to ``.NAME.old-XXXX`` first; :func:`clean_temporaries` removes what a
killed writer left behind (and puts such a moved-aside checkpoint back when the new one
never arrived). Nothing else is ever replaced or deleted: :func:`save_checkpoint`
refuses a path that is a file, a symbolic link, or a folder holding anything a
checkpoint does not write.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from nrf._files import file_mode, temp_folder_beside

TENSORS = "tensors.safetensors"
STATE = "state.json"
FORMAT = "nrf-checkpoint-2"
#: Formats :func:`load_checkpoint` reads: version 1 hashed the tensor file only.
READABLE = (FORMAT, "nrf-checkpoint-1")
_TEMPORARY = re.compile(r"^\.(?P<name>step-\d{8}|best)\.(?P<kind>old-)?[A-Za-z0-9_]{6,}$")


class CheckpointError(ValueError):
    """A checkpoint is missing, truncated, altered or of another format."""


class CheckpointMismatch(ValueError):
    """A sound checkpoint of something else (other networks, another process count): an
    error to report, not damage to skip."""


def bad_field(key: str, expected: str, value: Any) -> str:
    """The message for a ``state.json`` entry of the wrong kind (value cut to 60 characters)."""
    return f"state.json {key}: expected {expected}, got {str(value)[:60]!r}"


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


def json_digest(record: dict[str, Any]) -> str:
    """The sha256 of ``record``'s canonical JSON (sorted keys, compact separators)."""
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _check_replaceable(final: Path) -> None:
    """Refuse to replace anything but an nrf checkpoint folder (or an empty folder)."""
    if final.is_symlink():
        raise FileExistsError(f"{final}: is a symbolic link; not replacing it with a checkpoint")
    if not final.exists():
        return
    if not final.is_dir():
        raise FileExistsError(f"{final}: exists and is not a folder; not replacing it with a checkpoint")
    foreign = sorted(p.name for p in final.iterdir() if p.name not in (TENSORS, STATE))
    if foreign:
        more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
        raise FileExistsError(
            f"{final}: holds {foreign[0]!r}{more}, which an nrf checkpoint does not write; "
            "not replacing the folder (give a new or empty folder)"
        )


def save_checkpoint(
    path: str | os.PathLike[str], tensors: dict[str, torch.Tensor], state: dict[str, Any]
) -> Path:
    """Write ``tensors`` and JSON-able ``state`` as the checkpoint folder ``path``.

    ``path`` may be new, an empty folder or an earlier checkpoint (which is replaced
    atomically); anything else raises :class:`FileExistsError` and nothing is written.
    """
    final = Path(path)
    _check_replaceable(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    record = {"format": FORMAT, **state}
    for key in ("sha256", "json_sha256"):
        record.pop(key, None)
    tmp = temp_folder_beside(final)
    try:
        flat = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
        save_file(flat, str(tmp / TENSORS))
        record["sha256"] = _sha256(tmp / TENSORS)
        record["json_sha256"] = json_digest(record)
        (tmp / STATE).write_text(json.dumps(record, indent=1, sort_keys=True))
        for name in (TENSORS, STATE):
            with open(tmp / name, "rb") as f:
                os.fsync(f.fileno())
            os.chmod(tmp / name, file_mode())  # safetensors writes its file private
        if final.exists():
            old = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_dir(final.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def is_checkpoint(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder holding exactly the files of a checkpoint."""
    folder = Path(path)
    return (
        folder.is_dir() and not folder.is_symlink() and {p.name for p in folder.iterdir()} == {TENSORS, STATE}
    )


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint folder; raise :class:`CheckpointError` if it is incomplete or altered."""
    folder = Path(path)
    if not (folder / STATE).is_file() or not (folder / TENSORS).is_file():
        raise CheckpointError(f"{folder}: not a checkpoint (needs {STATE} and {TENSORS})")
    try:
        state = json.loads((folder / STATE).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{folder / STATE}: unreadable ({str(exc)[:200]})") from None
    if not isinstance(state, dict) or state.get("format") not in READABLE:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{folder}: unknown checkpoint format {str(found)[:80]!r}")
    if state["format"] == FORMAT:
        recorded = state.pop("json_sha256", None)
        if recorded != json_digest(state):
            raise CheckpointError(
                f"{folder / STATE}: content does not match its json_sha256 (edited or damaged); "
                "refusing to load it"
            )
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


def step_of(folder: Path) -> int:
    """The step of a folder named by :func:`step_dir`."""
    return int(folder.name[5:])


def list_checkpoints(checkpoints: str | os.PathLike[str]) -> list[Path]:
    """Step checkpoint folders, oldest first (temporary and ``best`` folders excluded)."""
    root = Path(checkpoints)
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("step-*") if p.is_dir() and p.name[5:].isdigit())


def parameters_finite(tensors: dict[str, torch.Tensor], prefix: str = "model/") -> bool:
    """Whether every floating-point tensor under ``prefix`` is finite."""
    return all(
        bool(torch.isfinite(v).all())
        for k, v in tensors.items()
        if k.startswith(prefix) and v.is_floating_point()
    )


def latest_valid(
    checkpoints: str | os.PathLike[str],
    accept: Callable[[Path, dict[str, torch.Tensor], dict[str, Any]], str | None] | None = None,
    warn: bool = True,
    before: int | None = None,
) -> tuple[Path, dict[str, torch.Tensor], dict[str, Any]] | None:
    """The newest checkpoint (of a step before ``before``, if given) that loads and that
    ``accept`` (if given) does not reject.

    ``accept(folder, tensors, state)`` returns None to take the checkpoint or the reason
    to skip it (a structural check of its JSON, say). A damaged or rejected checkpoint is
    skipped for the next older one with a :class:`UserWarning` naming it (``warn``).
    """
    for folder in reversed(list_checkpoints(checkpoints)):
        if before is not None and step_of(folder) >= before:
            continue
        try:
            tensors, state = load_checkpoint(folder)
            reason = None if accept is None else accept(folder, tensors, state)
        except CheckpointError as exc:
            reason = str(exc)
        if reason is None:
            return folder, tensors, state
        if warn:
            warnings.warn(f"skipping checkpoint {folder}: {reason}", UserWarning, stacklevel=2)
    return None


def prune(checkpoints: str | os.PathLike[str], keep_last: int, keep: Path | None = None) -> None:
    """Delete all but the newest ``keep_last`` step checkpoints (and ``keep``)."""
    for folder in list_checkpoints(checkpoints)[:-keep_last]:
        if keep is None or folder != keep:
            shutil.rmtree(folder, ignore_errors=True)


def clean_temporaries(folder: str | os.PathLike[str]) -> list[str]:
    """Remove what a killed :func:`save_checkpoint` left in ``folder``; returns the names.

    Only the names this module writes in a checkpoints folder are touched (``NAME`` is
    ``step-NNNNNNNN`` or ``best``). A temporary ``.NAME.XXXX`` folder is deleted. A
    moved-aside ``.NAME.old-XXXX`` checkpoint is put back as ``NAME`` when ``NAME`` is
    missing (the writer died between its two renames), else deleted. Only call this while
    no other process writes there
    (hold the run's lock).
    """
    root = Path(folder)
    if not root.is_dir():
        return []
    cleaned = []
    for entry in sorted(root.iterdir()):
        match = _TEMPORARY.match(entry.name)
        if match is None or not entry.is_dir() or entry.is_symlink():
            continue
        target = root / match["name"]
        if match["kind"] and not target.exists() and is_checkpoint(entry):
            os.replace(entry, target)
        else:
            shutil.rmtree(entry, ignore_errors=True)
        cleaned.append(entry.name)
    if cleaned:
        _fsync_dir(root)
    return cleaned


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
