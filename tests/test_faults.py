"""Randomized fault injection: runs killed (SIGKILL) at random moments of training and of
checkpoint writes, resumed each time, end bit-identical to an uninterrupted run, with the
same metrics log and no temporary left behind."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nrf.training import checkpoint as ckpt
from nrf.training.config import load_config
from nrf.training.run import train
from training_helpers import write_config

DRIVER = Path(__file__).with_name("fault_driver.py")
SETTINGS = {"steps": 300, "ckpt": 10, "eval_every": 0}
KILLS = 50  # in all, at most KILLS_PER_RUN in one run
KILLS_PER_RUN = 5


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def _final(run: Path) -> dict[str, torch.Tensor]:
    tensors, state = ckpt.load_checkpoint(ckpt.list_checkpoints(run / "checkpoints")[-1])
    kept = {k: v for k, v in tensors.items() if k.startswith(("model/", "optim/", "rank0/", "data/"))}
    return kept | {"step": torch.tensor(state["step"])}


def _log(run: Path) -> list[dict[str, object]]:
    """The train and eval lines of the log, without their wall times."""
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "time"} for r in lines if r["phase"] in ("train", "eval")]


def _leftovers(run: Path) -> list[str]:
    found = [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]
    return found + [p.name for p in run.iterdir() if p.name.endswith(".tmp")]


def _completed(run: Path) -> bool:
    summary = run / "summary.json"
    return summary.exists() and json.loads(summary.read_text())["status"] == "completed"


def _command(run: Path, cfg: Path) -> list[str]:
    """Resume once a checkpoint exists; until then train (again)."""
    return ["resume", str(run)] if ckpt.list_checkpoints(run / "checkpoints") else ["train", str(cfg)]


def _killed_once(args: list[str], run: Path, rng: random.Random) -> str:
    """Start ``nrf ARGS`` and kill it at a random moment; returns how it ended."""
    point = rng.choice(["time", "replace", "fsync", "save_file"])
    if point == "time":
        proc = subprocess.Popen([sys.executable, str(DRIVER), "none", "0", *args], env=_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        log = run / "metrics.jsonl"
        start = log.stat().st_size if log.exists() else -1
        deadline = time.time() + 60
        while proc.poll() is None and time.time() < deadline:
            if (log.stat().st_size if log.exists() else -1) != start:  # training is under way
                break
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 1.5))
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate()
    else:
        k = rng.randint(1, 12)
        proc = subprocess.Popen([sys.executable, str(DRIVER), point, str(k), *args], env=_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        _, err = proc.communicate(timeout=120)
        point = f"{point}#{k}"
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"nrf {' '.join(args)} failed after a kill ({point}): {err.decode()[-2000:]}")
    return f"{point}:{'killed' if proc.returncode else 'finished'}"


@pytest.mark.slow
def test_fifty_random_kills_with_resumes_end_bit_identical(tmp_path: Path) -> None:
    reference, _ = train(load_config(write_config(tmp_path / "ref", **SETTINGS)))
    want, want_log = _final(reference), _log(reference)
    rng = random.Random(20261201)
    kills, runs = 0, 0
    while kills < KILLS:
        assert runs < 3 * KILLS // KILLS_PER_RUN, f"only {kills} kills landed in {runs} runs"
        cfg = write_config(tmp_path / f"r{runs}", **SETTINGS)
        run = tmp_path / f"r{runs}" / "runs" / "tiny"
        runs += 1
        history: list[str] = []
        while not _completed(run) and sum(h.endswith("killed") for h in history) < KILLS_PER_RUN:
            history.append(_killed_once(_command(run, cfg), run, rng))
        kills += sum(h.endswith("killed") for h in history)
        if not _completed(run):
            done = subprocess.run([sys.executable, "-m", "nrf", *_command(run, cfg)], env=_env(),
                                  capture_output=True)  # fmt: skip
            assert done.returncode == 0, (history, done.stderr.decode()[-2000:])
        got = _final(run)
        assert got.keys() == want.keys(), history
        for key in want:
            assert torch.equal(got[key], want[key]), f"run {runs}: {key} differs after {history}"
        assert _log(run) == want_log, f"run {runs}: the metrics log differs after {history}"
        assert _leftovers(run) == [], f"run {runs}: temporaries left after {history}"
        print(f"run {runs}: {', '.join(history)}")
