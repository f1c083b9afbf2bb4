"""Randomized fault injection: runs killed (SIGKILL) at random moments of training and of
checkpoint writes, resumed each time, end bit-identical to an uninterrupted run, with the
same metrics log and no temporary left behind."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import pytest
import torch

from fault_driver import arm
from nrf.cli.main import main
from nrf.training import checkpoint as ckpt
from nrf.training.config import load_config
from nrf.training.run import train
from training_helpers import write_config

SETTINGS = {"steps": 120, "ckpt": 5, "eval_every": 0}
KILLS = 50  # in all, at most KILLS_PER_RUN in one run
KILLS_PER_RUN = 5


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


def _spawn(point: str, k: int, args: list[str]) -> int:
    """Fork a child that arms the fault and runs ``nrf ARGS`` (this process has imported
    torch and nrf already, so a child starts in milliseconds); returns its pid."""
    pid = os.fork()
    if pid == 0:  # the child never returns into the test
        code = 1
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            arm(point, k)
            code = main(args)
        finally:
            os._exit(code)
    return pid


def _killed_once(args: list[str], run: Path, rng: random.Random) -> str:
    """Run ``nrf ARGS`` and kill it at a random moment; returns how it ended."""
    point = rng.choice(["time", "replace", "fsync", "save_file"])
    status = None
    if point == "time":
        log = run / "metrics.jsonl"
        start = log.stat().st_size if log.exists() else -1
        pid = _spawn("none", 0, args)
        deadline = time.time() + 60
        while time.time() < deadline:
            done, code = os.waitpid(pid, os.WNOHANG)
            if done:
                status = code
                break
            if (log.stat().st_size if log.exists() else -1) != start:  # training is under way
                break
            time.sleep(0.005)
        if status is None:
            time.sleep(rng.uniform(0.0, 0.8))
            os.kill(pid, signal.SIGKILL)
    else:
        k = rng.randint(1, 12)
        pid = _spawn(point, k, args)
        point = f"{point}#{k}"
    if status is None:
        _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
        return f"{point}:killed"
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        return f"{point}:finished"
    raise AssertionError(f"nrf {' '.join(args)} failed after a kill ({point}): status {status}")


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
            assert main(_command(run, cfg)) == 0, history
        got = _final(run)
        assert got.keys() == want.keys(), history
        for key in want:
            assert torch.equal(got[key], want[key]), f"run {runs}: {key} differs after {history}"
        assert _log(run) == want_log, f"run {runs}: the metrics log differs after {history}"
        assert _leftovers(run) == [], f"run {runs}: temporaries left after {history}"
        print(f"run {runs}: {', '.join(history)}")
