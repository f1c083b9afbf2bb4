"""Loaders of the detector panel's data sets (nrf.data.anomaly_sets) and the bandwidth rule
behind the detector's default noise level (nrf.metrics.kde_bandwidth)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.neighbors import KernelDensity

from nrf.data.anomaly_sets import (
    AnomalyTask,
    load_adbench,
    load_kdd_service,
    load_sklearn_tasks,
    read_xy_npz,
)
from nrf.data.errors import ChecksumError, DataFormatError, DataNotFoundError
from nrf.metrics.kde_bandwidth import bandwidth_grid, kde_log_density, likelihood_cv_bandwidth
from test_data_kddcup import make_table, write_csv


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def test_read_xy_npz_reads_adbench_layout_and_refuses_others(tmp_path: Path) -> None:
    X = np.arange(12, dtype=np.int16).reshape(6, 2)
    y = np.array([0, 0, 1, 0, 1, 0])
    got_x, got_y = read_xy_npz(_npz(tmp_path / "a.npz", X=X, y=y))
    assert got_x.dtype == np.float64
    assert got_y.dtype == np.int64
    np.testing.assert_array_equal(got_x, X)
    with pytest.raises(DataFormatError, match="missing \\['y'\\]"):
        read_xy_npz(_npz(tmp_path / "b.npz", X=X))
    with pytest.raises(DataFormatError, match="X \\(n, d\\) and y \\(n,\\)"):
        read_xy_npz(_npz(tmp_path / "c.npz", X=X, y=y[:5]))
    with pytest.raises(DataFormatError, match="only 0"):
        read_xy_npz(_npz(tmp_path / "d.npz", X=X, y=y * 2))
    with pytest.raises(DataFormatError, match="NaN"):
        read_xy_npz(_npz(tmp_path / "e.npz", X=np.full((6, 2), np.nan), y=y))
    objects = np.array([{"a": 1}] * 6, dtype=object)
    with pytest.raises(DataFormatError, match=r"not a readable \.npz"):  # pickled objects are not loaded
        read_xy_npz(_npz(tmp_path / "f.npz", X=objects, y=y))
    (tmp_path / "g.npz").write_bytes(b"not a zip file")
    with pytest.raises(DataFormatError, match=r"not a readable \.npz"):
        read_xy_npz(tmp_path / "g.npz")


def test_load_adbench_checks_the_recorded_file(tmp_path: Path) -> None:
    X, y = np.random.RandomState(0).rand(10, 3), np.array([0] * 8 + [1] * 2)
    _npz(tmp_path / "adbench" / "6_cardio.npz", X=X, y=y)
    with pytest.raises(DataFormatError, match="recorded ADBench file"):  # a different file of that name
        load_adbench("6_cardio", tmp_path)
    task = load_adbench("6_cardio", tmp_path, verify=False)
    assert task.X.shape == (10, 3)
    assert task.y.sum() == 2
    _npz(tmp_path / "adbench" / "my_set.npz", X=X, y=y)  # names not on record are read as they are
    assert load_adbench("my_set", tmp_path).name == "my_set"
    with pytest.raises(DataNotFoundError, match=r"6_thyroid\.npz"):
        load_adbench("6_thyroid", tmp_path)


def test_load_adbench_sha256_mismatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _npz(tmp_path / "adbench" / "x.npz", X=np.eye(4), y=np.array([0, 0, 0, 1]))
    from nrf.data import anomaly_sets

    monkeypatch.setitem(anomaly_sets.ADBENCH_FILES, "x", (path.stat().st_size, "0" * 64))
    with pytest.raises(ChecksumError, match="sha256 checksum mismatch"):
        load_adbench("x", tmp_path)


def test_sklearn_one_class_tasks() -> None:
    iris = load_sklearn_tasks("iris")
    assert [t.name for t in iris] == ["iris/0", "iris/1", "iris/2"]
    assert all(t.X.shape == (150, 4) and t.y.sum() == 100 for t in iris)
    (cancer,) = load_sklearn_tasks("breast-cancer")
    assert cancer.y.sum() == 212  # the malignant tumours are the anomalies
    with pytest.raises(ValueError, match="name must be one of"):
        load_sklearn_tasks("wine")
    with pytest.raises(ValueError, match="both present"):
        AnomalyTask("t", np.zeros((3, 2)), np.zeros(3, dtype=np.int64))


def test_kdd_service_subset(tmp_path: Path) -> None:
    table = make_table(60)
    write_csv(tmp_path / "kddcup99", table.lines)
    task = load_kdd_service("http", tmp_path)
    services = np.array(table.categorical["service"])
    assert task.X.shape[0] == int((services == "http").sum())
    labels = np.array(table.labels)[services == "http"]
    np.testing.assert_array_equal(task.y, (labels != "normal.").astype(int))
    assert (task.X.std(axis=0) > 0).all()  # constant columns dropped


def test_kde_log_density_matches_scikit_learn() -> None:
    rng = np.random.RandomState(0)
    ref, query = rng.randn(50, 3), rng.randn(7, 3)
    ours = kde_log_density(torch.from_numpy(query), torch.from_numpy(ref), 0.4, chunk=3).numpy()
    theirs = KernelDensity(bandwidth=0.4).fit(ref).score_samples(query)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10)
    with pytest.raises(ValueError, match="bandwidth must be"):
        kde_log_density(torch.zeros(2, 3), torch.zeros(2, 3), 0.0)
    with pytest.raises(ValueError, match="same d"):
        kde_log_density(torch.zeros(2, 3), torch.zeros(2, 4), 1.0)


def test_likelihood_cv_bandwidth_follows_the_data_scale() -> None:
    rng = np.random.RandomState(1)
    rows = torch.from_numpy(rng.randn(1200, 2))
    choice = likelihood_cv_bandwidth(rows[:1000], rows[1000:])
    # a Gaussian sample of 1,000 rows in 2-D: the likelihood-optimal bandwidth is near
    # Silverman's n^(-1/6) ~ 0.32 (scale 1), far inside the grid
    assert 0.15 < choice.bandwidth < 0.6
    assert not choice.at_edge
    scaled = likelihood_cv_bandwidth(rows[:1000] * 10, rows[1000:] * 10)
    assert math.isclose(scaled.bandwidth, 10 * choice.bandwidth, rel_tol=1e-9)  # the grid scales too
    brute = max(choice.grid, key=lambda h: float(kde_log_density(rows[1000:], rows[:1000], h).mean()))
    assert choice.bandwidth == brute
    assert len(bandwidth_grid(rows)) == 43
    with pytest.raises(ValueError, match="NaN"):
        likelihood_cv_bandwidth(rows[:10], torch.full((2, 2), float("nan")))
    with pytest.raises(ValueError, match="m >= 2"):
        likelihood_cv_bandwidth(rows[:1], rows[1:3])
