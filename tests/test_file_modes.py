"""Everything nrf writes follows the user's umask (no private 0600 / 0700 leftovers of
temporary files), whatever the writer: run folders, checkpoints, CLI outputs, detector
saves, benchmark JSON."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from nrf._files import current_umask, write_atomic, write_text_atomic
from nrf.applications.anomaly import NRFDetector
from nrf.cli.main import main
from training_helpers import write_config


@pytest.fixture(params=[0o022, 0o027])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _modes(root: Path) -> dict[str, int]:
    paths = [root, *root.rglob("*")] if root.is_dir() else [root]
    return {str(p.relative_to(root.parent)): stat.S_IMODE(p.stat().st_mode) for p in paths}


def _expect(root: Path, mask: int) -> None:
    wrong = {
        name: oct(mode)
        for name, mode in _modes(root).items()
        if mode != ((0o777 if (root.parent / name).is_dir() else 0o666) & ~mask)
    }
    assert not wrong, f"modes under umask {oct(mask)}: {wrong}"


def test_current_umask_reads_without_changing_it(umask: int) -> None:
    assert current_umask() == umask
    assert current_umask() == umask


def test_atomic_writers(tmp_path: Path, umask: int) -> None:
    write_text_atomic(tmp_path / "a.txt", "x")
    write_atomic(tmp_path / "b.bin", lambda f: np.save(f, np.zeros(3)))
    _expect(tmp_path / "a.txt", umask)
    _expect(tmp_path / "b.bin", umask)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin"]  # no temporary left


def test_run_folder_and_cli_outputs(tmp_path: Path, umask: int) -> None:
    cfg = write_config(tmp_path)
    assert main(["train", str(cfg)]) == 0
    run = tmp_path / "runs" / "tiny"
    assert main(["report", str(run)]) == 0
    _expect(run, umask)
    outputs = tmp_path / "out"
    outputs.mkdir()
    assert main(["sample", str(run), "-n", "4", "--out", str(outputs / "s.npy")]) == 0
    np.savetxt(outputs / "rows.csv", np.load(outputs / "s.npy"), delimiter=",")
    assert (
        main(["score", str(run), "--input", str(outputs / "rows.csv"), "--out", str(outputs / "e.npy")]) == 0
    )
    _expect(outputs, umask)


def test_detector_save(tmp_path: Path, umask: int) -> None:
    rows = np.random.default_rng(0).normal(size=(64, 3))
    det = NRFDetector(epochs=1, random_state=0).fit(rows)
    det.save(tmp_path / "det")
    _expect(tmp_path / "det", umask)
