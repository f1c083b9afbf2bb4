"""Options are never silently ignored: ``--model`` on a single-model run, ``nrf resume``
that would shorten a run or has nothing to do, a misspelled optimizer table, and keys
removed with ``--unset`` / ``KEY=~``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nrf.cli.main import main
from nrf.training.config import ConfigError, load_config
from nrf.training.run import train
from training_helpers import write_config


@pytest.fixture
def run(tmp_path: Path) -> Path:
    folder, _ = train(load_config(write_config(tmp_path, steps=10, ckpt=5, eval_every=0)))
    return folder


@pytest.mark.parametrize("model", ["1", "-1", "99"])
def test_model_on_a_single_model_run_is_refused(
    run: Path, tmp_path: Path, model: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sample", str(run), "-n", "3", "--out", str(tmp_path / "s.npy"), "--model", model]) == 1
    assert f"this run trained one model; choose 0 or none, got {model}" in capsys.readouterr().err
    assert not (tmp_path / "s.npy").exists()
    assert main(["sample", str(run), "-n", "3", "--out", str(tmp_path / "s.npy"), "--model", "0"]) == 0


def test_resume_refuses_to_shorten_and_says_when_nothing_is_left(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = (run / "config.toml").read_text()
    assert main(["resume", str(run), "--set", "train.steps=4"]) == 1
    assert "the run is at step 10 already and cannot be shortened" in capsys.readouterr().err
    assert (run / "config.toml").read_text() == config  # nothing was changed
    assert main(["resume", str(run)]) == 0
    assert "was already complete at step 10; nothing was trained" in capsys.readouterr().out
    assert main(["resume", str(run), "--set", "train.steps=15"]) == 0
    assert "(completed)" in capsys.readouterr().out
    assert json.loads((run / "summary.json").read_text())["step"] == 15


def test_a_misspelled_optimizer_table_is_named(tmp_path: Path) -> None:
    path = write_config(tmp_path, steps=5, eval_every=0)
    path.write_text(path.read_text().replace("[optim.energy]", "[optim.enrgy]"))
    with pytest.raises(
        ConfigError, match=r"optim\.enrgy: not a parameter group.*did you mean \[optim\.energy\]"
    ):
        train(load_config(path))


def test_unset_removes_a_key_so_another_optimizer_can_be_chosen(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    switch = ["--set", "optim.energy.name=rmsprop", "--set", "train.steps=12"]
    assert main(["resume", str(run), *switch]) == 1  # the run's resolved adam table holds betas
    assert "betas" in capsys.readouterr().err
    # A table's other keys go with --unset of the table (applied before every --set).
    replace = ["--unset", "optim.energy", "--set", "optim.energy.lr=1e-3"]
    with pytest.warns(UserWarning, match="the checkpoint's optimizer is Adam, the config's RMSprop"):
        assert main(["resume", str(run), *switch, *replace]) == 0
    text = (run / "config.toml").read_text()
    assert 'name = "rmsprop"' in text
    assert "betas" not in text
    assert main(["resume", str(run), "--unset", "optim.energy.no_such_key"]) == 1
    assert "--unset optim.energy.no_such_key: not set in the config" in capsys.readouterr().err


def test_tilde_in_an_override_removes_and_quoted_tilde_is_a_string(tmp_path: Path) -> None:
    path = write_config(tmp_path, steps=5, eval_every=0)
    cfg = load_config(path, ['run.name="~"'])
    assert cfg.run.name == "~"
    with pytest.raises(ConfigError, match="no table nothing"):
        load_config(path, ["nothing.here=~"])
    fast = write_config(tmp_path / "fast", steps=5, eval_every=0, lr=0.05)
    assert load_config(fast).optim["energy"]["lr"] == 0.05
    assert load_config(fast, ["optim.energy.lr=~"]).optim["energy"]["lr"] == 1e-3  # Adam's default again


def test_progress_bars_are_drawn_on_a_terminal_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(tmp_path, steps=10, eval_every=0)
    assert main(["train", str(path), "--set", "train.progress=true"]) == 0
    assert "it/s" not in capsys.readouterr().err  # stderr is not a terminal here
    monkeypatch.setattr("nrf._console.stderr_is_terminal", lambda: True)
    monkeypatch.setattr("nrf.training.trainer.stderr_is_terminal", lambda: True)
    assert main(["train", str(path), "--set", "train.progress=true", "--set", 'run.name="again"']) == 0
    assert "10/10" in capsys.readouterr().err


def test_a_closed_pipe_ends_quietly_with_141(run: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    np.save(tmp_path / "rows.npy", np.random.default_rng(0).random((200_000, 2), dtype=np.float32))
    proc = subprocess.Popen(
        [sys.executable, "-m", "nrf", "score", str(run), "--input", str(tmp_path / "rows.npy")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # the reader goes away, as `| head -1` does
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert np.isfinite(float(first))  # it printed energies until then
    assert "Broken pipe" not in err
    assert "Traceback" not in err
