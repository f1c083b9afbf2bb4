"""``nrf score`` on an image run: the run's ``data.scale`` applied to raw pixels, the
shapes the run was trained on, CSV headers, and labels from a threshold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nrf.cli.main import main
from nrf.data import load_digits
from nrf.training.config import load_config
from nrf.training.data import load_training_data
from nrf.training.run import load_run, train
from training_helpers import write_config


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("score")
    cfg = write_config(tmp, data="digits", data_extra='scale = "symmetric"', steps=10, eval_every=0)
    run, _ = train(load_config(cfg, ["model.energy_args.event_shape=[1, 8, 8]"]))
    return run


def _energies(run: Path, x: torch.Tensor) -> np.ndarray:
    return load_run(run, "latest").score(x).numpy()


def test_raw_pixels_are_scaled_as_the_run_scaled_its_images(
    digits_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = load_digits().images[:6]  # uint8 0..16, (6, 8, 8): the run saw (1, 8, 8) in [-1, 1]
    np.save(tmp_path / "raw.npy", raw)
    assert (
        main(["score", str(digits_run), "--input", str(tmp_path / "raw.npy"), "--checkpoint", "latest"]) == 0
    )
    captured = capsys.readouterr()
    printed = np.array([float(v) for v in captured.out.split()])
    assert "scaled by the run's data.scale = 'symmetric'" in captured.err
    expected = _energies(digits_run, torch.from_numpy(raw[:, None] / 16.0 * 2 - 1).float())
    np.testing.assert_allclose(printed, expected, rtol=1e-5)
    # The same rows already scaled, flat, with --pixels scaled: the same energies.
    np.save(tmp_path / "scaled.npy", (raw.reshape(6, 64) / 16.0 * 2 - 1).astype(np.float32))
    args = ["score", str(digits_run), "--input", str(tmp_path / "scaled.npy"), "--checkpoint", "latest"]
    assert main([*args, "--pixels", "scaled"]) == 0
    np.testing.assert_allclose([float(v) for v in capsys.readouterr().out.split()], expected, rtol=1e-5)
    # Raw pixels out of the set's range are refused, not scaled into nonsense.
    np.save(tmp_path / "big.npy", np.full((2, 8, 8), 255, dtype=np.uint8))
    assert main(["score", str(digits_run), "--input", str(tmp_path / "big.npy")]) == 1
    assert "lie in [0, 16]" in capsys.readouterr().err


def test_csv_with_header_and_labels_from_a_threshold(
    digits_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = load_digits().images[:5].reshape(5, 64)
    path = tmp_path / "rows.csv"
    header = ",".join(f"p{i}" for i in range(64))
    np.savetxt(path, raw, fmt="%d", delimiter=",", header=header, comments="")
    energies = _energies(digits_run, torch.from_numpy(raw.reshape(5, 1, 8, 8) / 8.0 - 1).float())
    cut = float(np.median(energies))
    out = tmp_path / "e.csv"
    args = ["score", str(digits_run), "--input", str(path), "--checkpoint", "latest", "--out", str(out)]
    assert main([*args, "--threshold", str(cut)]) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "energy,label"
    table = np.loadtxt(out, delimiter=",", skiprows=1)
    np.testing.assert_allclose(table[:, 0], energies, rtol=1e-5)
    np.testing.assert_array_equal(table[:, 1], (energies > cut).astype(float))
    # --contamination: the threshold is that quantile of the run's own training energies.
    out.unlink()
    assert main([*args, "--contamination", "0.1"]) == 0
    cfg = load_config(digits_run / "config.toml", run_directory=True)
    train_e = _energies(digits_run, load_training_data(cfg.data, cfg.run.seed).train)
    assert f"threshold {np.quantile(train_e, 0.9):.6g}" in capsys.readouterr().err
    assert main([*args, "--overwrite", "--threshold", "1", "--contamination", "0.1"]) == 1
    assert "give one of them" in capsys.readouterr().err


def test_wrong_shapes_and_pixels_on_a_vector_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run, _ = train(load_config(write_config(tmp_path, steps=5, eval_every=0)))
    np.save(tmp_path / "rows.npy", np.zeros((3, 5), dtype=np.float32))
    assert main(["score", str(run), "--input", str(tmp_path / "rows.npy")]) == 1
    assert "the model expects (2,)" in capsys.readouterr().err
    np.save(tmp_path / "ok.npy", np.zeros((3, 2), dtype=np.float32))
    assert main(["score", str(run), "--input", str(tmp_path / "ok.npy"), "--pixels", "raw"]) == 1
    assert "--pixels applies to image runs" in capsys.readouterr().err
    assert main(["score", str(tmp_path / "missing"), "--input", str(tmp_path / "ok.npy")]) == 1
    assert "no such run directory" in capsys.readouterr().err
