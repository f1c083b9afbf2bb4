"""``nrf demo`` trains, evaluates next to the paper and writes its run directory; it never
removes what it did not write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nrf.cli.main import main
from nrf.demo import demo_threads, prepare_folder
from nrf.training.rundir import RunDir


@pytest.mark.slow
def test_demo_trains_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--steps", "200", "--threads", "1"]) == 0
    text = capsys.readouterr().out
    for row in ("generation", "revision", "oracle", "paper (Table I", "160,000 iterations"):
        assert row in text
    assert (out / "report.html").stat().st_size > 10_000
    assert (out / "plots" / "fig3-step00000200.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The printed figures are the run's final evaluation, the ones its report shows.
    final = json.loads((out / "summary.json").read_text())["final"]
    revision = next(line for line in text.splitlines() if line.startswith("revision"))
    assert revision.split()[1:3] == [f"{final['covered_modes']:.2f}", f"{final['realistic_ratio']:.3f}"]
    # A second demo into the same folder is refused without --overwrite, and replaces it with.
    assert main(["demo", "--out", str(out), "--steps", "10", "--threads", "1"]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert json.loads((out / "summary.json").read_text())["step"] == 200
    assert main(["demo", "--out", str(out), "--steps", "10", "--threads", "1", "--overwrite"]) == 0
    assert json.loads((out / "summary.json").read_text())["step"] == 10
    assert not (out / "plots" / "fig3-step00000200.png").exists()


def _fake_run(folder: Path) -> None:
    """The files an earlier run leaves (no training needed to test the folder rules)."""
    (folder / "checkpoints" / "step-00000010").mkdir(parents=True)
    (folder / "checkpoints" / "step-00000010" / "tensors.safetensors").write_bytes(b"x")
    (folder / "plots").mkdir()
    (folder / "config.toml").write_text("[run]\n")
    (folder / "metrics.jsonl").write_text("{}\n")
    (folder / ".report.html.abc.tmp").write_text("")


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_folder_with_a_foreign_file_is_refused_and_the_file_survives(
    tmp_path: Path, overwrite: bool
) -> None:
    out = tmp_path / "mine"
    _fake_run(out)
    (out / "notes.txt").write_text("my notes")
    (out / "data.csv").write_text("a,b\n1,2\n")
    with pytest.raises(FileExistsError, match=r"data\.csv, notes\.txt"):
        prepare_folder(out, overwrite=overwrite)
    assert (out / "notes.txt").read_text() == "my notes"
    assert (out / "data.csv").exists()
    assert (out / "checkpoints" / "step-00000010").is_dir()


def test_the_cli_refuses_a_foreign_folder_with_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mine"
    _fake_run(out)
    (out / "notes.txt").write_text("my notes")
    assert main(["demo", "--out", str(out), "--steps", "10", "--threads", "1", "--overwrite"]) == 1
    assert "notes.txt" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "my notes"


def test_an_earlier_run_is_replaced_only_with_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    _fake_run(out)
    with pytest.raises(FileExistsError, match="--overwrite"):
        prepare_folder(out, overwrite=False)
    assert (out / "config.toml").exists()
    prepare_folder(out, overwrite=True)
    assert RunDir(out).foreign_entries() == []
    assert [p.name for p in out.iterdir() if p.name != ".lock"] == []


def test_new_empty_and_file_targets(tmp_path: Path) -> None:
    prepare_folder(tmp_path / "new", overwrite=False)  # nothing there: fine, nothing created
    assert not (tmp_path / "new").exists()
    (tmp_path / "empty").mkdir()
    prepare_folder(tmp_path / "empty", overwrite=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="is a file"):
        prepare_folder(tmp_path / "file", overwrite=True)


def test_threads_follow_omp_num_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert demo_threads() == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert demo_threads() == 1
    assert demo_threads(3) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "two")
    with pytest.raises(ValueError, match="OMP_NUM_THREADS"):
        demo_threads()
