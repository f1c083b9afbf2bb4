"""Fuzzed detector saves and run folders: seeded byte flips and structural edits of
``state.json`` (with its hash recomputed, as a buggy writer would leave it) give either a
working model or one clear error naming the file; never a traceback from deep inside."""

from __future__ import annotations

import json
import random
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nrf.applications import NRFDetector
from nrf.training import checkpoint as ckpt
from nrf.training.config import load_config
from nrf.training.run import load_run, resume, train
from training_helpers import write_config

_VALUES: list[Any] = [None, True, False, -1, 0, 1, 3.5, -1e308, 1e308, "", "x", [], {}, [1, "a"], {"a": 1}]


def _nodes(obj: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _nodes(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:8]):
            out += _nodes(v, (*path, i))
    return out


def _mutate(state: dict[str, Any], rng: random.Random) -> str:
    """One structural edit at a random place of the JSON tree; returns what it did."""
    protected = {"format", "sha256", "json_sha256"}
    paths = [p for p in _nodes(state) if p and p[0] not in protected]
    path = rng.choice(paths)
    parent = state
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    action = rng.choice(["delete", "replace", "replace", "shrink"])
    if action == "delete":
        del parent[key]
    elif action == "shrink" and isinstance(parent[key], list | dict) and parent[key]:
        if isinstance(parent[key], list):
            parent[key].pop()
        else:
            parent[key].pop(next(iter(parent[key])))
    else:
        parent[key] = rng.choice(_VALUES)
        action = f"replace with {parent[key]!r}"
    return f"{action} {'.'.join(map(str, path))}"


def _flip(path: Path, rng: random.Random) -> str:
    data = bytearray(path.read_bytes())
    i = rng.randrange(len(data))
    data[i] ^= 1 << rng.randrange(8)
    if rng.random() < 0.3:
        data = data[: rng.randrange(len(data))]
    path.write_bytes(bytes(data))
    return f"flip byte {i} of {path.name}"


def _edit_state(folder: Path, rng: random.Random) -> str:
    state = json.loads((folder / ckpt.STATE).read_text())
    state.pop("json_sha256")
    what = _mutate(state, rng)
    state["json_sha256"] = ckpt.json_digest(state)
    (folder / ckpt.STATE).write_text(json.dumps(state))
    return what


def _outcome(action: Callable[[], Any], names: str, what: str) -> str:
    """``"ok"``, ``"fell back"`` (a checkpoint skipped with a warning naming it) or
    ``"refused"``; anything but a clear error naming ``names`` fails the test."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            action()
    except (ValueError, OSError) as exc:  # CheckpointError and ConfigError are ValueErrors
        message = str(exc)
    else:
        skipped = [w for w in caught if str(w.message).startswith("skipping")]
        assert all(names in str(w.message) for w in skipped), [str(w.message) for w in skipped]
        return "fell back" if skipped else "ok"
    assert names in message, f"{what}: the error does not name {names}: {message}"
    return "refused"


def test_fuzzed_detector_saves(tmp_path: Path) -> None:
    rows = (0.5 + 0.1 * np.random.RandomState(0).randn(150, 4)).astype(np.float32)
    det = NRFDetector(method="cd", epochs=1, batch_size=64, random_state=0).fit(rows)
    base = tmp_path / "base"
    det.save(base)
    rng = random.Random(7)
    counts = {"ok": 0, "fell back": 0, "refused": 0}
    for i in range(150):
        case = tmp_path / f"c{i}"
        case.mkdir()
        for name in (ckpt.TENSORS, ckpt.STATE):
            (case / name).write_bytes((base / name).read_bytes())
        if i % 3 == 0:
            what = _flip(case / rng.choice([ckpt.TENSORS, ckpt.STATE]), rng)
        else:
            what = _edit_state(case, rng)

        def load(case: Path = case) -> None:
            loaded = NRFDetector.load(case)
            assert np.isfinite(loaded.decision_function(rows[:5])).all()

        counts[_outcome(load, str(case), what)] += 1
    assert counts["refused"] >= 90, counts  # most edits break the save (edits of fit-only settings do not)


@pytest.mark.slow
def test_fuzzed_run_folders(tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path, steps=10, ckpt=5, eval_every=0))
    run, _ = train(cfg)
    newest = ckpt.list_checkpoints(run / "checkpoints")[-1]
    pristine = {name: (newest / name).read_bytes() for name in (ckpt.TENSORS, ckpt.STATE)}
    rng = random.Random(11)
    counts = {"ok": 0, "fell back": 0, "refused": 0}
    for i in range(60):
        for name, data in pristine.items():
            (newest / name).write_bytes(data)
        what = _flip(newest / rng.choice(list(pristine)), rng) if i % 4 == 0 else _edit_state(newest, rng)
        if i % 2:
            counts[_outcome(lambda: load_run(run, "latest"), str(run), what)] += 1
        else:  # resume: from this checkpoint, or from the older one with a warning, or an error
            counts[_outcome(lambda: resume(run, ["train.steps=10"]), str(run), what)] += 1
            newest = ckpt.list_checkpoints(run / "checkpoints")[-1]
    assert counts["fell back"] >= 15, counts  # edits of the fields a resume or a model needs
