"""Preprocessing of the one-class benchmarks and a tiny end-to-end run of ``nrf bench kdd``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.pipeline import make_pipeline

from nrf.applications.anomaly.preprocessing import GlobalContrastNormalizer, ScalarMinMaxScaler
from nrf.cli.main import main
from test_data_kddcup import make_table, write_csv


def test_global_contrast_normalization() -> None:
    x = np.random.RandomState(0).rand(6, 1, 5, 5) * 255
    l1 = GlobalContrastNormalizer("l1").fit_transform(x).reshape(6, -1)
    np.testing.assert_allclose(l1.mean(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(np.abs(l1).mean(axis=1), 1.0)
    l2 = GlobalContrastNormalizer("l2").fit_transform(x).reshape(6, -1)
    np.testing.assert_allclose(np.sqrt((l2**2).sum(axis=1)) / 25, 1.0)
    flat = GlobalContrastNormalizer().fit(x).transform(x.reshape(6, -1))
    np.testing.assert_allclose(flat, l1)
    const = GlobalContrastNormalizer().fit_transform(np.full((2, 4), 3.0))
    np.testing.assert_array_equal(const, 0.0)
    with pytest.raises(ValueError, match="scale must be one of"):
        GlobalContrastNormalizer("l3").fit(x)
    with pytest.raises(ValueError, match="X has 4 features, but GlobalContrastNormalizer is expecting 25"):
        GlobalContrastNormalizer().fit(x).transform(np.zeros((2, 4)))


def test_scalar_min_max_uses_one_range_for_all_values() -> None:
    train = np.array([[0.0, 2.0], [4.0, 1.0]])
    scaler = ScalarMinMaxScaler().fit(train)
    assert (scaler.data_min_, scaler.data_max_) == (0.0, 4.0)
    np.testing.assert_allclose(scaler.transform([[2.0, 8.0]]), [[0.5, 2.0]])
    rng = np.random.default_rng(0)
    pipe = make_pipeline(GlobalContrastNormalizer(), ScalarMinMaxScaler()).fit(rng.random((10, 9)))
    out = pipe.transform(rng.random((10, 9)))
    assert out.shape == (10, 9)
    with pytest.raises(ValueError, match="NaN"):
        ScalarMinMaxScaler().fit([[np.nan, 1.0]])


@pytest.mark.slow
def test_kdd_benchmark_tiny_run_and_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "data"
    write_csv(root / "kddcup99", make_table(600).lines)
    out = tmp_path / "out"
    args = ["bench", "kdd", "--quick", "--out", str(out), "--root", str(root), "--splits", "2",
            "--methods", "sghmc,iforest"]  # fmt: skip
    assert main(args) == 0
    table = capsys.readouterr().out
    assert "| nrf SGHMC" in table
    assert "| IForest" in table
    assert "final model, 1 epochs" in table  # --quick: one nrf epoch, and the table says so
    lines = (out / "kdd-progress.jsonl").read_text().splitlines()
    assert len(lines) == 1 + 4  # header + 2 methods x 2 splits
    record = json.loads(lines[1])
    assert 0.0 <= record["f1"] <= 1.0
    assert 0.0 <= record["auroc"] <= 1.0
    assert 100 <= record["train_rows"] <= 300  # the attack rows of a 300-row training half
    # --resume with one more split runs only the new split
    assert main([*args[:-4], "--splits", "3", "--methods", "sghmc,iforest", "--resume"]) == 0
    assert len((out / "kdd-progress.jsonl").read_text().splitlines()) == 1 + 6
    results = json.loads((out / "kdd.json").read_text())
    assert len(results["results"]["methods"]["IForest"]["per_split"]) == 3
    # a changed nrf default invalidates only the nrf records: they rerun, IForest's are kept
    from dataclasses import replace

    from nrf.applications.anomaly import presets

    tabular = presets.DETECTOR_PRESETS["tabular"]
    changed = replace(tabular, objective={**tabular.objective, "alpha_p": 0.2})
    monkeypatch.setitem(presets.DETECTOR_PRESETS, "tabular", changed)
    assert main([*args[:-4], "--splits", "3", "--methods", "sghmc,iforest", "--resume"]) == 0
    lines = (out / "kdd-progress.jsonl").read_text().splitlines()
    assert [json.loads(line)["method"] for line in lines[7:]] == ["nrf SGHMC"] * 3
    assert json.loads(lines[-1])["settings"]["preset"]["objective"]["alpha_p"] == 0.2
    results = json.loads((out / "kdd.json").read_text())["results"]["methods"]
    records = results["nrf SGHMC"]["per_split"]
    assert [r["settings"]["preset"]["objective"]["alpha_p"] for r in records] == [0.2] * 3
    # --report prints what the progress file holds and fits nothing, even for missing splits
    capsys.readouterr()
    assert main([*args[:-4], "--splits", "5", "--methods", "sghmc,iforest", "--report"]) == 0
    assert len((out / "kdd-progress.jsonl").read_text().splitlines()) == len(lines)
    assert re.search(r"\| IForest +\| 3 ", capsys.readouterr().out)
    assert main(["bench", "kdd", "--report", "--out", str(tmp_path / "none")]) != 0
    assert "--report: no progress file" in capsys.readouterr().err


@pytest.mark.slow
def test_kdd_validation_protocol_never_scores_the_test_half(tmp_path: Path) -> None:
    root = tmp_path / "data"
    write_csv(root / "kddcup99", make_table(600).lines)
    out = tmp_path / "out"
    assert main(["bench", "kdd", "--quick", "--validate", "--out", str(out), "--root", str(root),
                 "--splits", "1", "--methods", "iforest,sgld-x3"]) == 0  # fmt: skip
    lines = (out / "kdd-validation-progress.jsonl").read_text().splitlines()
    ensemble = json.loads(lines[-1])
    assert ensemble["method"] == "nrf SGLD x3"
    assert (ensemble["settings"]["n_estimators"], ensemble["settings"]["sampler"]) == (3, "sgld")
    assert json.loads((out / "kdd.json").read_text())["results"]["validate"] is True
    import kdd  # importable now: the bench runner put benchmarks/ on the path

    labels = np.r_[np.zeros(800, dtype=np.int64), np.ones(200, dtype=np.int64)]
    np.random.RandomState(1).shuffle(labels)
    train, scored = kdd._validation_split(1000, labels, 7)
    _, test = kdd._split(1000, labels, 7)
    half = np.setdiff1d(np.arange(1000), test)
    assert set(train) | set(scored) <= set(half)
    assert not set(train) & set(scored)
    assert (labels[train] == 0).all()
    attacks = int((labels[half] == 0).sum())
    assert len(train) == int(0.8 * attacks)
    assert int(labels[scored].sum()) == (attacks - len(train)) // 4


@pytest.mark.slow
def test_mnist_oc_benchmark_tiny_run_and_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import nrf.data
    from nrf.data.mnist import ImageSet

    rng = np.random.RandomState(0)

    def fake_mnist(split: str = "train", root: object = None) -> ImageSet:
        n = 120 if split == "train" else 60
        labels = np.arange(n) % 3
        images = (rng.rand(n, 28, 28) * 60 + 60 * labels[:, None, None]).astype(np.uint8)
        return ImageSet(images=images, labels=labels)

    monkeypatch.setattr(nrf.data, "load_mnist", fake_mnist)  # the benchmark imports it at load
    out = tmp_path / "out"
    args = ["bench", "mnist-oc", "--quick", "--out", str(out), "--methods", "sgld,iforest"]
    assert main(args) == 0
    table = capsys.readouterr().out
    assert re.search(r"\| nrf SGLD +\| \d+\.\d +\| \d+\.\d +\| - ", table)  # digits 0 and 1 of --quick
    assert "final model, 1 epochs" in table
    lines = (out / "mnist-oc-progress.jsonl").read_text().splitlines()
    assert len(lines) == 1 + 4  # header + 2 methods x 2 digits
    assert all(0.0 <= json.loads(line)["auroc"] <= 100.0 for line in lines[1:])
    assert main([*args, "--report"]) == 0
    assert "| IForest" in capsys.readouterr().out
    assert len((out / "mnist-oc-progress.jsonl").read_text().splitlines()) == 5


@pytest.mark.slow
def test_tabular_panel_quick_run_split_and_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert (
        main(["bench", "tabular-panel", "--quick", "--out", str(out), "--methods", "default,iforest,knn"])
        == 0
    )
    table = capsys.readouterr().out
    assert re.search(r"\| iris +\| continuous", table)
    assert "| breast-cancer" in table
    assert "| mean rank" in table
    assert "| nrf default vs | wins | ties | losses |" in table
    lines = (out / "tabular-panel-progress.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines[1:]]
    assert len(records) == 3 * (3 + 1)  # 3 methods x (3 iris tasks + breast cancer), one seed
    assert {r["task"] for r in records} == {"iris/0", "iris/1", "iris/2", "breast-cancer"}
    assert all(0 <= r["auroc"] <= 100 and 0 <= r["ap"] <= 100 for r in records)
    results = json.loads((out / "tabular-panel.json").read_text())["results"]
    wtl = results["wins_ties_losses"]
    assert set(wtl) == {"IForest", "KNN"}
    assert all(sum(v) == 2 for v in wtl.values())
    import tabular_panel  # importable now: the bench runner put benchmarks/ on the path

    from nrf.data.anomaly_sets import AnomalyTask

    y = np.r_[np.zeros(90, dtype=np.int64), np.ones(10, dtype=np.int64)]
    X = np.random.RandomState(0).rand(100, 3) * 50
    train, test, y_test = tabular_panel.split_task(AnomalyTask("t", X, y), 0)
    assert train.shape == (63, 3)
    assert test.shape == (30, 3)
    assert int(y_test.sum()) == 3  # 70 / 30, stratified
    np.testing.assert_allclose(train.min(0), 0.0, atol=1e-6)  # scaled by the normal training rows
    np.testing.assert_allclose(train.max(0), 1.0, atol=1e-6)
    big = AnomalyTask(
        "big", np.random.RandomState(1).rand(30000, 2), np.r_[np.zeros(29000), np.ones(1000)].astype(int)
    )
    train, test, _ = tabular_panel.split_task(big, 0)
    assert train.shape[0] + test.shape[0] < 10000  # ADBench's cap, before the split (anomalies dropped)
    with pytest.raises(ValueError, match="--sets: unknown"):
        main(["bench", "tabular-panel", "--quick", "--out", str(out), "--sets", "nope", "--debug"])
