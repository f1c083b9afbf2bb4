"""The trainer end to end: run directory, CLI commands, divergence recovery, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from nrf.cli.main import main
from nrf.data import Batch
from nrf.objectives import OBJECTIVES, ContrastiveDivergence, StepContext
from nrf.training import checkpoint as ckpt
from nrf.training.build import register_objective
from nrf.training.config import ConfigError, load_config
from nrf.training.run import load_run, train
from nrf.training.trainer import TrainingDiverged
from training_helpers import write_config


def _records(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_run_directory_and_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path)
    assert main(["train", str(cfg)]) == 0
    run = tmp_path / "runs" / "tiny"
    assert load_config(run / "config.toml").run.seed == 3
    records = _records(run)
    phases = {r["phase"] for r in records}
    assert {"train", "eval"} <= phases
    train_lines = [r for r in records if r["phase"] == "train"]
    assert [r["step"] for r in train_lines] == list(range(5, 41, 5))
    assert {"loss", "energy_data", "energy_samples", "lr_energy"} <= set(train_lines[0])
    assert [p.name for p in ckpt.list_checkpoints(run / "checkpoints")] == ["step-00000030", "step-00000040"]
    assert sorted(p.name for p in (run / "plots").glob("density-step*.png")) == [
        "density-step00000020.png",
        "density-step00000040.png",
    ]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["step"] == 40
    # sample / score / report
    out = tmp_path / "s.npy"
    assert main(["sample", str(run), "-n", "7", "--out", str(out)]) == 0
    samples = np.load(out)
    assert samples.shape == (7, 2)
    assert np.isfinite(samples).all()
    chains = tmp_path / "c.npy"
    assert main(["sample", str(run), "-n", "5", "--steps", "2", "--init", "noise", "--out", str(chains)]) == 0
    assert np.load(chains).shape == (5, 2)
    capsys.readouterr()
    assert main(["sample", str(run), "-n", "5", "--init", "buffer", "--out", str(tmp_path / "b.npy")]) == 1
    assert "init='buffer': this objective has no buffer" in capsys.readouterr().err
    rows = tmp_path / "rows.csv"
    np.savetxt(rows, samples[:3], delimiter=",")
    capsys.readouterr()
    assert main(["score", str(run), "--input", str(rows)]) == 0
    energies = [float(v) for v in capsys.readouterr().out.split()]
    objective = load_run(run, "latest")
    expected = objective.score(torch.from_numpy(samples[:3]))
    np.testing.assert_allclose(energies, expected.numpy(), rtol=1e-5)
    assert main(["report", str(run)]) == 0
    assert (run / "report.html").stat().st_size > 10_000
    # A second `train` must not overwrite the run.
    assert main(["train", str(cfg)]) == 1
    assert "already holds a run" in capsys.readouterr().err


def test_evaluators_are_configurable(tmp_path: Path) -> None:
    cfg = load_config(
        write_config(tmp_path, steps=10, eval_every=5, data_extra="validation_fraction = 0.2"),
        ["train.evaluators=['validation-energy']"],
    )
    run, final = train(cfg)
    assert set(final) == {"energy_validation"}  # no mode metrics, no density plots
    assert not list((run / "plots").glob("*.png"))
    bad = load_config(write_config(tmp_path / "b", steps=10), ["train.evaluators=['validation-energy']"])
    with pytest.raises(ConfigError, match="validation-energy needs validation rows"):
        train(bad)


def test_resume_continues_and_records_overrides(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, steps=20)
    assert main(["train", str(cfg)]) == 0
    run = tmp_path / "runs" / "tiny"
    assert main(["resume", str(run), "--set", "train.steps=30"]) == 0
    assert load_config(run / "config.toml").train.steps == 30
    records = _records(run)
    assert any(r.get("event") == "resume" for r in records)
    assert json.loads((run / "summary.json").read_text())["step"] == 30


def test_time_budget_stops_evaluates_and_saves(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, steps=100_000)
    assert main(["train", str(cfg), "--set", "train.max_seconds=0.5"]) == 0
    run = tmp_path / "runs" / "tiny"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "time budget"
    assert 1 <= summary["step"] < 100_000
    events = [r for r in _records(run) if r.get("event") == "time budget"]
    assert len(events) == 1
    assert events[0]["step"] == summary["step"]
    assert "train.max_seconds = 0.5" in events[0]["message"]
    newest = ckpt.list_checkpoints(run / "checkpoints")[-1]
    assert ckpt.step_of(newest) == summary["step"]  # the stopped model is kept
    with pytest.raises(ConfigError, match=r"train\.max_seconds: expected > 0"):
        load_config(cfg, ["train.max_seconds=0"])


def test_cli_user_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", str(tmp_path / "missing.toml")]) == 1
    assert "config file not found" in capsys.readouterr().err
    assert main(["resume", str(tmp_path)]) == 1
    assert "not a run directory" in capsys.readouterr().err
    cfg = write_config(tmp_path)
    assert main(["train", str(cfg), "--set", "optim.energy.lr=fast"]) == 1
    err = capsys.readouterr().err
    assert "optim.energy.lr: expected float" in err
    assert len(err.strip().splitlines()) == 1


def test_nan_in_data_fails_before_training(tmp_path: Path) -> None:
    data = np.random.default_rng(0).normal(size=(100, 2)).astype(np.float32)
    data[17, 1] = np.nan
    data[40, 0] = np.inf
    np.save(tmp_path / "d.npy", data)
    cfg = load_config(write_config(tmp_path, data="npy", data_extra=f'path = "{tmp_path / "d.npy"}"'))
    with pytest.raises(ValueError, match=r"2 non-finite values .* row 17"):
        train(cfg)
    assert not (tmp_path / "runs" / "tiny" / "checkpoints").exists()


def test_shape_mismatch_names_both_shapes(tmp_path: Path) -> None:
    np.save(tmp_path / "d.npy", np.zeros((50, 3), dtype=np.float32))
    config = write_config(tmp_path, data="npy", data_extra=f'path = "{tmp_path / "d.npy"}"')
    # The file's row shape is taken when the config gives none; a given one must match.
    cfg = load_config(config, ["model.energy_args.event_shape=[2]"])
    with pytest.raises(ValueError, match=r"shape \(3,\) .* input shape \(2,\)"):
        train(cfg)


class NaNOnce(ContrastiveDivergence):
    """Injects a NaN loss at step 15, once."""

    injected = False

    def training_step(self, batch: Batch, ctx: StepContext) -> dict[str, float]:
        if ctx.step == 15 and not NaNOnce.injected:
            NaNOnce.injected = True
            ctx.update("energy", self.energy(batch.x).mean() * float("nan"))
        return super().training_step(batch, ctx)


class AlwaysNaN(ContrastiveDivergence):
    def training_step(self, batch: Batch, ctx: StepContext) -> dict[str, float]:
        if ctx.step >= 12:
            return {"loss": float("nan")}
        return super().training_step(batch, ctx)


@pytest.fixture
def test_objectives() -> Any:
    register_objective("cd-nan-once", context=("energy", "sampler"))(NaNOnce)
    register_objective("cd-always-nan", context=("energy", "sampler"))(AlwaysNaN)
    NaNOnce.injected = False
    yield
    OBJECTIVES.unregister("cd-nan-once")
    OBJECTIVES.unregister("cd-always-nan")


@pytest.mark.usefixtures("test_objectives")
def test_injected_nan_rolls_back_and_recovers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nrf.training.trainer as trainer_module

    clock = [1000.0]  # a clock that moves one second per reading: a rollback must not rewind it

    def tick() -> float:
        clock[0] += 1.0
        return clock[0]

    monkeypatch.setattr(trainer_module, "time", type("Clock", (), {"time": staticmethod(tick)}))
    cfg = load_config(write_config(tmp_path, objective="cd-nan-once"), ["train.log_every=1"])
    run, _ = train(cfg)
    records = _records(run)
    times = [r["time"] for r in records if "time" in r]
    assert times == sorted(times)  # the rollback to step 10 does not rewind the run's clock
    events = [r for r in records if r["phase"] == "event"]
    assert len(events) == 1
    assert events[0]["event"] == "rollback"
    assert "non-finite energy loss" in events[0]["message"]
    assert "rolled back to step 10" in events[0]["message"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["rollbacks"] == 1
    assert summary["lr_scale"] == pytest.approx(0.5)
    state = json.loads((ckpt.list_checkpoints(run / "checkpoints")[-1] / "state.json").read_text())
    assert state["optim"]["energy"]["param_groups"][0]["lr"] == pytest.approx(0.5e-3)


@pytest.mark.usefixtures("test_objectives")
def test_persistent_divergence_stops_after_max_rollbacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, objective="cd-always-nan", max_rollbacks=2)
    with pytest.raises(TrainingDiverged, match="after 2 rollback"):
        train(load_config(cfg))
    run = tmp_path / "runs" / "tiny"
    assert json.loads((run / "summary.json").read_text())["status"] == "diverged"
    rollbacks = [r for r in _records(run) if r.get("event") == "rollback"]
    assert len(rollbacks) == 2
    assert "x0.25" in rollbacks[1]["message"]


def test_huge_learning_rate_is_recovered(tmp_path: Path) -> None:
    """SGD with lr 1e3 blows the energies past max_abs_energy; rollbacks lower it until it trains."""
    cfg = write_config(tmp_path, opt="sgd", lr=1e3, max_abs=50.0, lr_factor=0.001, max_rollbacks=4, steps=30)
    run, _ = train(load_config(cfg))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["rollbacks"] >= 1
    assert summary["lr_scale"] <= 1e-3
    assert any("runaway energy" in r.get("message", "") for r in _records(run))
    tensors, _ = ckpt.load_checkpoint(ckpt.list_checkpoints(run / "checkpoints")[-1])
    assert all(torch.isfinite(t).all() for k, t in tensors.items() if k.startswith("model/"))


def test_run_directories_of_earlier_versions_load(tmp_path: Path) -> None:
    """A run's config.toml from before the component registry held every sampler's and
    optimizer's fields at their defaults: read back, those the component does not take are
    dropped; a non-default value of a field the component does not take is still an error."""
    cfg = write_config(tmp_path, steps=10, eval_every=0)
    assert main(["train", str(cfg)]) == 0
    run = tmp_path / "runs" / "tiny"
    text = (run / "config.toml").read_text()
    text = text.replace("[sampler]\n", "[sampler]\nbeta = 0.1\n").replace(
        "[optim.energy]\n", "[optim.energy]\nmomentum = 0.0\n"
    )
    (run / "config.toml").write_text(text)
    assert load_run(run, "latest").score(torch.zeros(3, 2)).shape == (3,)
    (run / "config.toml").write_text(text.replace("beta = 0.1", "beta = 0.3"))
    with pytest.raises(ConfigError, match=r"sampler\.beta: not an argument of langevin"):
        load_run(run, "latest")
