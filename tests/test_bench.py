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
    assert (tmp_path / "beam_mog_kl.png").stat().st_size > 1000
    epochs = [point[0] for point in record["ring"]["beam"]["curve"]]  # --curve-points (10) over the fit
    assert 9 <= len(epochs) <= 11
    assert epochs == sorted(epochs)
    assert epochs[-1] == pytest.approx(0.3, abs=0.02)  # 30 epochs x 0.01


def _fake_mnist(split: str = "train", root: object = None) -> object:
    import numpy as np

    from nrf.data.mnist import ImageSet

    rng = np.random.RandomState(0 if split == "train" else 1)
    n = 700 if split == "train" else 120
    labels = np.arange(n) % 10
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    for c in range(10):  # a bright block at each class's place
        r, col = 2 + 12 * (c // 5), 1 + 5 * (c % 5)
        images[labels == c, r : r + 6, col : col + 6] = 230
    images = np.clip(images + rng.randint(0, 25, images.shape), 0, 255).astype(np.uint8)
    return ImageSet(images=images, labels=labels)


def test_beam_mnist_tiny_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import math

    import nrf.data

    monkeypatch.setattr(nrf.data, "load_mnist", _fake_mnist)  # the benchmark imports it at load
    argv = ["bench", "beam-mnist", "--quick", "--out", str(tmp_path), "--rows", "600",
            "--methods", "rbm,beam,pcd1,sklearn"]  # fmt: skip
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "scikit-learn BernoulliRBM" in table
    assert "speed: sklearn s / nrf s per epoch" in table
    record = json.loads((tmp_path / "beam-mnist.json").read_text())["results"]
    assert record["epochs"] == [1, 1]
    assert set(record["parts"]["continuous"]) == {"rbm", "beam", "oracle"}  # pcd1 / sklearn: binary only
    binary = record["parts"]["binary"]
    assert set(binary) == {"rbm", "beam", "pcd1", "sklearn", "oracle"}
    for method in ("rbm", "beam", "pcd1", "sklearn"):
        entry = binary[method]
        assert math.isfinite(entry["kl_forward"])
        assert math.isfinite(entry["kl_reverse"])
        assert entry["test_ll"] < 0
        assert entry["log_z_sd"] >= 0
        assert [p[0] for p in entry["curve"]] == [1.0, 2.0]  # kNN KL after each epoch
        assert entry["seconds_per_epoch"] > 0
    assert len(record["speed"]["ratios"]) == 1
    assert record["speed"]["ratios"][0] > 0
    assert (tmp_path / "beam_mnist_kl.png").stat().st_size > 1000
    assert (tmp_path / "beam_mnist_particles.png").stat().st_size > 1000


def test_beam_mnist_reads_sklearn_weights_with_sklearns_free_energy() -> None:
    import numpy as np
    import torch
    from sklearn.neural_network import BernoulliRBM

    module = bench.load("beam-mnist")
    x = (np.random.RandomState(0).rand(200, 12) < 0.3).astype(np.float64)
    model = BernoulliRBM(n_components=5, n_iter=3, learning_rate=0.1, random_state=0).fit(x)
    rbm = module.as_nrf_rbm(model)
    with torch.no_grad():
        ours = rbm(torch.from_numpy(x).float()).double().numpy()
    np.testing.assert_allclose(ours, model._free_energy(x), rtol=1e-5, atol=1e-5)


def test_mnist_ebm_tiny_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import math

    import nrf.data
    import nrf.metrics.mnist_features
    import nrf.training.data

    for module in (nrf.data, nrf.training.data, nrf.metrics.mnist_features):
        monkeypatch.setattr(module, "load_mnist", _fake_mnist)
    monkeypatch.setenv("NRF_DATA_DIR", str(tmp_path / "data"))  # the feature network is built there
    argv = ["bench", "mnist-ebm", "--quick", "--out", str(tmp_path), "--minutes", "0.05", "--samples", "40",
            "--sample-steps", "2", "--eval-every", "1",
            "--methods", "tutorial,nrf-ebmkit,jem,conditional"]  # fmt: skip
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "FID-MNIST" in table
    assert "uniform noise" in table
    record = json.loads((tmp_path / "mnist-ebm.json").read_text())["results"]
    assert set(record["methods"]) == {"tutorial", "nrf-ebmkit", "jem", "conditional"}
    assert (tmp_path / "data" / "mnist-features" / "state.json").is_file()
    for entry in record["methods"].values():
        assert entry["steps"] >= 1
        assert entry["buffer"]["n_samples"] == 40
        assert entry["fresh"]["network"] == "MNIST"
        assert math.isfinite(entry["fresh"]["fid"])
        assert entry["forward_backward_ms"] > 0
        assert entry["curve"]
        assert math.isfinite(entry["curve"][-1]["is_mnist"])
    jem, conditional = record["methods"]["jem"], record["methods"]["conditional"]
    assert 0 <= jem["test_accuracy"] <= 1
    assert 0 <= jem["conditional_sample_accuracy"] <= 1
    assert jem["K"] == 20
    assert 0 <= conditional["test_accuracy"] <= 1
    assert 0 <= conditional["conversion_accuracy"] <= 1
    assert (tmp_path / "mnist_ebm_conversion.png").stat().st_size > 1000
    noise, train = record["reference"]["uniform noise"], record["reference"]["training images"]
    assert noise["fid"] > train["fid"]
    assert (tmp_path / "mnist_ebm_samples.png").stat().st_size > 1000


@pytest.mark.slow
def test_trajectories_tiny_run_report_and_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import math

    argv = ["bench", "trajectories", "--quick", "--out", str(tmp_path), "--datasets", "pusher-conditional",
            "--methods", "ebm-dsm,fc", "--minutes", "0.03", "--seeds", "1"]  # fmt: skip
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert "pusher-conditional ebm-dsm" in first
    assert "pusher-conditional fc" in first
    assert " seed 0 " in first  # the line of a fitted model
    methods = json.loads((tmp_path / "trajectories.json").read_text())["results"]["methods"]
    assert set(methods) == {"pusher-conditional/ebm-dsm", "pusher-conditional/fc"}
    configs = {m: entry["records"][0]["settings"]["config"] for m, entry in methods.items()}
    assert configs == {"pusher-conditional/ebm-dsm": "pusher_ebm_dsm_conditional",
                       "pusher-conditional/fc": "pusher_fc_conditional"}  # fmt: skip
    for entry in methods.values():
        (rec,) = entry["records"]
        assert rec["updates"] >= 1
        assert len(rec["mse"]) == 10
        assert all(math.isfinite(v) for v in rec["mse"])
        assert rec["diverged"] == 0.0
        assert math.isfinite(rec["frechet_mean"])
    assert (tmp_path / "trajectories.png").stat().st_size > 1000
    # --report and --resume rebuild the table from the progress file and fit nothing
    for flag in ("--report", "--resume"):
        assert main([*argv, flag]) == 0
        out = capsys.readouterr().out
        assert "updates" in out
        assert " seed 0 " not in out
        assert "| pusher-conditional | ebm-dsm |" in out
