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


EVIL = """
import pathlib
pathlib.Path({marker!r}).write_text("ran")
NAME = "evil"
DESCRIPTION = "should never be listed"
"""


def test_the_working_directory_is_never_searched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "MARKER"
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "evil.py").write_text(EVIL.format(marker=str(marker)))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(bench.ENV_VAR, raising=False)
    assert main(["bench", "list"]) == 0
    out = capsys.readouterr().out
    assert "sampler-kl" in out
    assert "evil" not in out
    assert main(["bench", "evil"]) == 1
    err = capsys.readouterr().err
    assert err.count("error:") == 1
    assert err.startswith("nrf bench: error: unknown benchmark 'evil'")
    assert "Traceback" not in err
    assert main(["bench", "evil", "--help"]) == 1
    capsys.readouterr()
    assert not marker.exists()
    assert all(d.resolve() != (tmp_path / "benchmarks").resolve() for d in bench.benchmark_dirs())


def test_bench_dir_from_the_environment_is_listed_without_running_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "MARKER"
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "tiny_bench.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('imported')\n"
        "from nrf.bench import BenchResult\n"
        'NAME = "tiny-bench"\nDESCRIPTION: str = "a benchmark of nothing"\n'
        "def run(args):\n    return BenchResult(table='| a |', results={'a': 1})\n"
    )
    monkeypatch.setenv(bench.ENV_VAR, str(folder))
    assert main(["bench", "list"]) == 0
    out = capsys.readouterr().out
    assert "tiny-bench" in out
    assert "a benchmark of nothing" in out
    assert "sampler-kl" in out  # the checkout's benchmarks as well
    assert not marker.exists()  # listing read the description, it ran nothing
    assert main(["bench", "tiny-bench", "--out", str(tmp_path / "out")]) == 0
    assert marker.read_text() == "imported"  # an explicitly chosen folder runs when asked to
    assert json.loads((tmp_path / "out" / "tiny-bench.json").read_text())["results"] == {"a": 1}


def test_bench_dir_that_is_not_a_folder_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(bench.ENV_VAR, str(tmp_path / "missing"))
    assert main(["bench", "list"]) == 1
    err = capsys.readouterr().err
    assert err.count("error:") == 1
    assert f"$NRF_BENCH_DIR: expected a folder of benchmark files, got {str(tmp_path / 'missing')!r}" in err


def test_describe_reads_the_description_without_importing(tmp_path: Path) -> None:
    path = tmp_path / "b.py"
    path.write_text('raise SystemExit("imported")\nDESCRIPTION = "static text"\n')
    assert bench.describe(path) == "static text"
    path.write_text("DESCRIPTION = compute()\n")
    assert bench.describe(path) == ""
    path.write_text("def broken(:\n")
    assert bench.describe(path) == ""
    path.write_bytes(b"\xff\x00\x01")
    assert bench.describe(path) == ""


def test_checkout_benchmarks_is_this_checkout() -> None:
    folder = bench.checkout_benchmarks()
    assert folder == Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.slow
def test_beam_mog_tiny_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "beam-mog", "--quick", "--out", str(tmp_path), "--datasets", "bimodal,ring",
            "--methods", "rbm,beam,gan", "--epochs-scale", "0.01"]  # fmt: skip
    assert main(argv) == 0
    assert "BEAM (driven sampler)" in capsys.readouterr().out
    record = json.loads((tmp_path / "beam-mog.json").read_text())["results"]["datasets"]
    assert set(record["bimodal"]) == {"rbm", "beam", "oracle"}  # no 1-D generator networks
    assert set(record["ring"]) == {"rbm", "beam", "gan", "oracle"}
    oracle = record["ring"]["oracle"]
    assert oracle["covered_modes"] == [8.0]
    assert abs(oracle["kl_forward"][0]) < 0.2  # fresh data against held-out data: ~0
    assert (tmp_path / "beam_mog_samples.png").stat().st_size > 1000
