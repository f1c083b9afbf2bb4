"""Fault injection: saves that never remove what they did not write, one process per run
folder, checkpoints whose every byte is verified, rollbacks to good checkpoints, logs
that are never truncated or duplicated."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from nrf.applications import NRFDetector
from nrf.cli.main import main
from nrf.training import checkpoint as ckpt
from nrf.training.config import ConfigError, load_config
from nrf.training.lock import FolderLock, FolderLockedError
from nrf.training.run import _prepare, load_run, resume, train
from training_helpers import write_config

FAST = {"epochs": 1, "batch_size": 64, "random_state": 0}


def _rows(n: int = 200, d: int = 4) -> np.ndarray:
    return (0.5 + 0.1 * np.random.RandomState(0).randn(n, d)).astype(np.float32)


@pytest.fixture(scope="module")
def fitted() -> NRFDetector:
    return NRFDetector(method="cd", **FAST).fit(_rows())


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _resumes(run: Path) -> list[str]:
    return [r["message"] for r in _records(run) if r.get("event") == "resume"]


def _rewrite_state(folder: Path, edit: object, rehash: bool = False) -> None:
    """Edit a checkpoint's state.json in place; ``rehash`` recomputes its json_sha256 (a
    structurally bad JSON that passes the hash, as a buggy writer would leave)."""
    state = json.loads((folder / ckpt.STATE).read_text())
    edit(state)  # type: ignore[operator]
    if rehash:
        state.pop("json_sha256", None)
        state["json_sha256"] = ckpt.json_digest(state)
    (folder / ckpt.STATE).write_text(json.dumps(state))


# --- 1. saving never removes what it did not write ---------------------------------------


def test_detector_save_refuses_a_folder_with_other_files(tmp_path: Path, fitted: NRFDetector) -> None:
    target = tmp_path / "mine"
    (target / "sub").mkdir(parents=True)
    (target / "notes.txt").write_text("keep me")
    (target / "sub" / "data.csv").write_text("1,2\n")
    with pytest.raises(FileExistsError, match=r"mine: holds 'notes.txt' and 1 more"):
        fitted.save(target)
    assert (target / "notes.txt").read_text() == "keep me"
    assert (target / "sub" / "data.csv").read_text() == "1,2\n"
    with pytest.raises(FileExistsError, match=r"notes\.txt"):
        fitted.save(target, overwrite=True)  # overwrite replaces a save, never a user's folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_detector_save_refuses_a_file_and_leaves_no_old_copy(tmp_path: Path, fitted: NRFDetector) -> None:
    target = tmp_path / "report.pdf"
    target.write_bytes(b"%PDF precious")
    with pytest.raises(FileExistsError, match="is not a folder"):
        fitted.save(target, overwrite=True)
    assert target.read_bytes() == b"%PDF precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.pdf"]


def test_detector_save_replaces_an_earlier_save_only_when_asked(tmp_path: Path, fitted: NRFDetector) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    fitted.save(empty)  # an empty folder is fine
    with pytest.raises(FileExistsError, match="pass overwrite=True"):
        fitted.save(empty)
    fitted.save(empty, overwrite=True)
    assert NRFDetector.load(empty).n_iter_ == fitted.n_iter_
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]
    link = tmp_path / "link"
    link.symlink_to(empty)
    with pytest.raises(FileExistsError, match="symbolic link"):
        fitted.save(link, overwrite=True)


def test_checkpoint_writer_refuses_foreign_folders(tmp_path: Path) -> None:
    folder = tmp_path / "best"
    folder.mkdir()
    (folder / "README").write_text("x")
    with pytest.raises(FileExistsError, match="README"):
        ckpt.save_checkpoint(folder, {"w": torch.zeros(1)}, {})
    assert (folder / "README").read_text() == "x"


# --- 2. one process per run folder -------------------------------------------------------


_HOLD = textwrap.dedent(
    """
    import sys, time
    from nrf.training.lock import FolderLock
    lock = FolderLock(sys.argv[1], "run folder").acquire()
    print("locked", flush=True)
    time.sleep(120)
    """
)


def _holder(folder: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_run_folder_in_use_is_refused_and_a_crashed_holder_releases_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, steps=10, eval_every=0)
    run = tmp_path / "runs" / "tiny"
    proc = _holder(run)
    try:
        assert main(["train", str(cfg)]) == 1
        err = capsys.readouterr().err
        assert f"is in use by process {proc.pid}" in err
        assert "Traceback" not in err
        assert not (run / "config.toml").exists()  # nothing written into the held folder
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # the holder died without releasing: the lock is stale and the next run takes it
    assert main(["train", str(cfg)]) == 0
    assert FolderLock(run).holder()["pid"] == os.getpid()


def test_resume_is_refused_while_the_run_trains(tmp_path: Path) -> None:
    run, _ = train(load_config(write_config(tmp_path, steps=10, eval_every=0)))
    with FolderLock(run, "run folder"), pytest.raises(FolderLockedError, match="in use by process"):
        resume(run, ["train.steps=20"])
    assert resume(run, ["train.steps=20"]) is not None  # released: resumes


def test_a_folder_without_checkpoints_keeps_its_log(tmp_path: Path) -> None:
    """Training into a run folder whose checkpoints were deleted cut metrics.jsonl to its
    first lines; now the log is kept and the new run follows a restart event."""
    cfg = load_config(write_config(tmp_path, steps=20, eval_every=0))
    run, _ = train(cfg)
    lines = (run / "metrics.jsonl").read_text()
    shutil.rmtree(run / "checkpoints")
    train(cfg)
    text = (run / "metrics.jsonl").read_text()
    assert text.startswith(lines)
    assert json.loads(text[len(lines) :].splitlines()[0])["event"] == "restart"
    with pytest.raises(FileExistsError, match=r"already holds a run \(step-00000020\)"):
        train(cfg)
    shutil.rmtree(run / "checkpoints")
    ckpt.save_checkpoint(run / "checkpoints" / "best", {"w": torch.ones(1)}, {})
    with pytest.raises(FileExistsError, match=r"already holds a run \(checkpoints/best\)"):
        train(cfg)


# --- 3. every byte of a checkpoint is verified --------------------------------------------


def test_an_edited_state_json_is_refused_and_the_previous_checkpoint_used(tmp_path: Path) -> None:
    run, _ = train(load_config(write_config(tmp_path, steps=20, eval_every=0)))
    newest = ckpt.list_checkpoints(run / "checkpoints")[-1]
    assert newest.name == "step-00000020"
    _rewrite_state(newest, lambda s: s.update(lr_scale=0.25))
    with pytest.raises(ckpt.CheckpointError, match="json_sha256"):
        ckpt.load_checkpoint(newest)
    with pytest.warns(UserWarning, match=r"skipping checkpoint .*step-00000020: .*edited or damaged"):
        resume(run, ["train.steps=20"])
    assert _resumes(run) == ["resumed from step-00000010"]


def test_a_structurally_bad_state_json_falls_back_with_a_warning(tmp_path: Path) -> None:
    run, _ = train(load_config(write_config(tmp_path, steps=20, eval_every=0)))
    newest = ckpt.list_checkpoints(run / "checkpoints")[-1]
    _rewrite_state(newest, lambda s: s.pop("ranks"), rehash=True)
    ckpt.load_checkpoint(newest)  # the hashes match: only the structure is wrong
    with pytest.warns(UserWarning, match=r"step-00000020: state.json ranks: expected one entry per process"):
        resume(run, ["train.steps=20"])
    assert _resumes(run) == ["resumed from step-00000010"]
    _rewrite_state(newest, lambda s: s.update(ranks="none"), rehash=True)  # resume rewrote step 20
    with pytest.warns(UserWarning, match=r"step-00000020: state.json ranks: .* got 'none'"):
        load_run(run, "latest")  # sampling and scoring fall back the same way


def test_the_detectors_saved_json_is_verified(tmp_path: Path, fitted: NRFDetector) -> None:
    fitted.save(tmp_path / "det")
    _rewrite_state(tmp_path / "det", lambda s: s["params"].update(contamination=0.4))
    with pytest.raises(ckpt.CheckpointError, match="json_sha256"):
        NRFDetector.load(tmp_path / "det")
    _rewrite_state(tmp_path / "det", lambda s: s.pop("input_shape"), rehash=True)
    with pytest.raises(ckpt.CheckpointError, match="input_shape: expected a list of positive integers"):
        NRFDetector.load(tmp_path / "det")


def test_checkpoints_of_the_first_format_still_load(tmp_path: Path) -> None:
    folder = ckpt.save_checkpoint(tmp_path / "c", {"w": torch.ones(2)}, {"step": 3})
    _rewrite_state(folder, lambda s: (s.pop("json_sha256"), s.update(format="nrf-checkpoint-1")))
    assert ckpt.load_checkpoint(folder)[1]["step"] == 3


# --- 4. a rollback goes back to a good checkpoint -----------------------------------------


def _rollbacks(run: Path) -> list[tuple[int, int, str]]:
    """(failed step, step rolled back to, the failed check) of every rollback."""
    out = []
    for r in _records(run):
        if r.get("event") == "rollback":
            reason, _, rest = r["message"].partition("; rolled back to step ")
            out.append((r["step"], int(rest.split()[0]), reason))
    return out


def test_rollback_never_returns_to_the_checkpoint_of_the_failed_parameters(tmp_path: Path) -> None:
    """With a checkpoint every step, the newest checkpoint holds the parameters whose energies
    failed the check: rolling back to it failed again at once, with the same energy, until the
    rollbacks were used up."""
    cfg = write_config(tmp_path, opt="adam", lr=10.0, ckpt=1, max_abs=100.0, max_rollbacks=6, steps=12,
                       eval_every=0)  # fmt: skip
    run, _ = train(load_config(cfg))
    rollbacks = _rollbacks(run)
    assert rollbacks, "the run was meant to diverge"
    assert all(back < failed for failed, back, _ in rollbacks)
    assert len(set(rollbacks)) == len(rollbacks)  # never the same failure again from the same state
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"
    # the abandoned trajectory's checkpoints were deleted: a resume cannot pick them up
    steps = [ckpt.step_of(f) for f in ckpt.list_checkpoints(run / "checkpoints")]
    assert steps == sorted(steps)
    assert steps[-1] == 12


def test_non_finite_initialization_is_an_error_not_a_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``model.init_batch = 0`` used to save NaN biases as the step-0 checkpoint."""
    cfg = write_config(tmp_path, steps=10)
    with pytest.raises(ConfigError, match=r"model.init_batch: expected >= 1, got 0"):
        load_config(cfg, ["model.init_batch=0"])
    trainer = _prepare(load_config(cfg), tmp_path / "runs" / "tiny")
    with pytest.raises(ValueError, match=r"at least one row \(model.init_batch >= 1\)"):
        trainer.loop.initialize(torch.zeros(0, dtype=torch.long))

    def poisoned(x: torch.Tensor) -> None:
        with torch.no_grad():
            next(trainer.objective.parameters()).fill_(float("nan"))

    monkeypatch.setattr(trainer.objective, "initialize", poisoned)
    with pytest.raises(ValueError, match=r"left non-finite values in energy\."):
        trainer.fit()
    assert not ckpt.list_checkpoints(tmp_path / "runs" / "tiny" / "checkpoints")


# --- 5, 6. logs and temporaries ------------------------------------------------------------


def test_resume_cuts_the_log_back_and_cleans_stale_temporaries(tmp_path: Path) -> None:
    run, _ = train(load_config(write_config(tmp_path, steps=20, eval_every=0)))
    before = (run / "metrics.jsonl").read_text()
    with open(run / "metrics.jsonl", "a") as f:  # lines written after the checkpoint, then a kill
        f.write(json.dumps({"phase": "train", "step": 25, "loss": 1.0}) + "\n")
        f.write('{"phase": "tra')
    stale = [run / "checkpoints" / ".step-00000030.k2j3h4l5", run / "checkpoints" / ".best.abcdef12"]
    for folder in stale:
        folder.mkdir()
        (folder / ckpt.TENSORS).write_bytes(b"partial")
    (run / "summary.json.tmp").write_text("{")
    resume(run, ["train.steps=30"])
    text = (run / "metrics.jsonl").read_text()
    assert text.startswith(before)
    records = [json.loads(line) for line in text.splitlines()]  # no partial line anywhere
    steps = [r["step"] for r in records if r["phase"] == "train"]
    assert steps == sorted(set(steps))
    assert steps[-1] == 30
    assert not any(p.exists() for p in stale)
    assert not (run / "summary.json.tmp").exists()


def test_a_checkpoint_moved_aside_by_a_killed_writer_is_put_back(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    saved = ckpt.save_checkpoint(root / "best", {"w": torch.ones(1)}, {"step": 4})
    os.replace(saved, root / ".best.old-1a2b3c4d")  # the kill fell between the two renames
    (root / ".best.x8y7z6w5").mkdir()
    (root / ".notes.keepthis").mkdir()  # not a name the writer uses: left alone
    assert ckpt.clean_temporaries(root) == [".best.old-1a2b3c4d", ".best.x8y7z6w5"]
    assert ckpt.load_checkpoint(root / "best")[1]["step"] == 4
    assert sorted(p.name for p in root.iterdir()) == [".notes.keepthis", "best"]


# --- 7. mismatching resumes are one-line errors -------------------------------------------


def test_resume_with_other_networks_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, _ = train(load_config(write_config(tmp_path, steps=10, eval_every=0)))
    assert main(["resume", str(run), "--set", "model.n_models=2", "--set", "train.steps=20"]) == 1
    err = capsys.readouterr().err
    assert "do not match the ones the config builds" in err
    assert "model.n_models" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert _records(run)[-1].get("event") != "resume"
    config = run / "config.toml"
    edited = re.sub(r"hidden = \[[^\]]*\]", "hidden = [16, 24]", config.read_text())
    assert edited != config.read_text()
    config.write_text(edited)
    assert main(["resume", str(run), "--set", "train.steps=20"]) == 1  # an edited network
    err = capsys.readouterr().err
    assert "do not match the ones the config builds" in err
    assert len(err.strip().splitlines()) == 1


def test_a_checkpoint_dir_in_use_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "ck"
    with FolderLock(folder), pytest.raises(FolderLockedError, match=r"checkpoint_dir .* in use"):
        NRFDetector(method="cd", checkpoint_dir=folder, **FAST).fit(_rows())
    det = NRFDetector(method="cd", checkpoint_dir=folder, **FAST).fit(_rows())
    assert det.n_iter_ > 0
    assert NRFDetector(method="cd", checkpoint_dir=folder, **FAST).fit(_rows()).n_iter_ == det.n_iter_
    assert FolderLock(folder).acquire().held  # released after each fit


def test_sample_and_score_never_overwrite_an_existing_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, _ = train(load_config(write_config(tmp_path, steps=10, eval_every=0)))
    mine = tmp_path / "mine.npy"
    np.save(mine, np.arange(3))
    rows = tmp_path / "rows.npy"
    np.save(rows, np.zeros((4, 2), dtype=np.float32))
    assert main(["sample", str(run), "-n", "5", "--out", str(mine)]) == 1
    assert main(["score", str(run), "--input", str(rows), "--out", str(mine)]) == 1
    err = capsys.readouterr().err
    assert err.count("exists; pass --overwrite to replace it") == 2
    np.testing.assert_array_equal(np.load(mine), np.arange(3))
    assert main(["sample", str(run), "-n", "5", "--out", str(mine), "--overwrite"]) == 0
    assert np.load(mine).shape == (5, 2)
    assert main(["score", str(run), "--input", str(rows), "--out", str(tmp_path / "e.csv")]) == 0
    assert (tmp_path / "e.csv").read_text().splitlines()[0] == "energy"  # a header, then the rows
    assert len((tmp_path / "e.csv").read_text().splitlines()) == 5
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_best_metric_no_evaluator_gives_stops_the_run_at_the_first_evaluation(tmp_path: Path) -> None:
    """It was ignored: checkpoints/best never appeared, silently."""
    cfg = load_config(write_config(tmp_path, steps=20, eval_every=10), ["train.best_metric='fid'"])
    with pytest.raises(ValueError, match=r"train.best_metric: 'fid' is not a metric .*covered_modes"):
        train(cfg)
    run = tmp_path / "runs" / "tiny"
    assert ckpt.list_checkpoints(run / "checkpoints")  # resumable with another best_metric
    resume(run, ["train.best_metric='covered_modes'"])
    assert ckpt.is_checkpoint(run / "checkpoints" / "best")
