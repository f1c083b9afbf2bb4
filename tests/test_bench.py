"""``nrf bench``: discovery, the JSON record, and tiny runs of the sampler benchmarks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nrf import bench
from nrf.cli.main import main


def test_discovery_lists_the_sampler_benchmarks() -> None:
    found = bench.discover()
    assert {"sampler-kl", "sampler-speed"} <= set(found)
    assert all(not p.name.startswith("_") for p in found.values())
    with pytest.raises(ValueError, match="unknown benchmark 'nope'"):
        bench.load("nope")


def test_markdown_table_and_mean_sd() -> None:
    table = bench.markdown_table(["a", "bb"], [["1", "22"], ["333", "4"]])
    assert table.splitlines() == ["| a   | bb |", "|-----|----|", "| 1   | 22 |", "| 333 | 4  |"]
    assert bench.mean_sd([1.0, 3.0]) == (2.0, pytest.approx(2**0.5))
    assert bench.mean_sd([5.0]) == (5.0, 0.0)


@pytest.mark.slow
def test_sampler_kl_tiny_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "sampler-kl", "--out", str(tmp_path), "--dim", "3", "--chains", "40"]
    assert main([*argv, "--steps", "60", "--runs", "2", "--record", "20"]) == 0
    out = capsys.readouterr().out
    assert "SGHMC (nrf, Eq. 13)" in out
    record = json.loads((tmp_path / "sampler-kl.json").read_text())
    finals = record["results"]["final_kl"]
    assert set(finals) >= {"CoopNet (Lx = Lh = 20)", "LD (exact gradient)", "exact samples (floor)"}
    assert all(len(v) == 2 for v in finals.values())
    assert record["machine"]["torch"]
    assert (tmp_path / "sampler_kl.png").stat().st_size > 1000


@pytest.mark.slow
def test_sampler_speed_tiny_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "sampler-speed", "--quick", "--out", str(tmp_path), "--energies", "gmm"]) == 0
    record = json.loads((tmp_path / "sampler-speed.json").read_text())
    timings = record["results"]["energies"]["GMM MLP (Table VI)"]["ms_per_step"]
    assert timings["floor (forward + input gradient)"] > 0
    assert timings["nrf Langevin"] > 0
    assert "ebmkit Langevin" in timings


def test_bench_rejects_unknown_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "sampler-kl", "--no-such-option"]) == 1
    assert "unknown options" in capsys.readouterr().err


def test_bench_help_lists_the_benchmarks_own_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "kdd", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--quick", "--splits", "--report"):
        assert option in out
    assert main(["bench", "--help"]) == 0
    assert "--splits" not in capsys.readouterr().out
    assert main(["bench"]) == 1
    assert "needs a benchmark NAME" in capsys.readouterr().err
