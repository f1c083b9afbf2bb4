"""The detector and `nrf train` are one loop: the same settings give the same parameters."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import tomli_w
import torch

from nrf.applications import NRFDetector
from nrf.training.config import load_config
from nrf.training.data import load_training_data
from nrf.training.run import load_run, train

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_mnist_preset_through_nrf_train_gives_the_detectors_parameters(tmp_path: Path) -> None:
    images = torch.rand(250, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    np.save(tmp_path / "digits.npy", images.numpy())
    raw = tomllib.loads((REPO / "configs" / "mnist_detector.toml").read_text())
    raw["run"].update(seed=0, out_dir=str(tmp_path / "runs"), device="cpu", threads=1)
    raw["data"] = {"name": "npy", "path": str(tmp_path / "digits.npy")}
    raw["train"].update(steps=4, log_every=2, checkpoint_every=2, progress=False)  # 2 epochs of 2 batches
    (tmp_path / "c.toml").write_text(tomli_w.dumps(raw))
    cfg = load_config(tmp_path / "c.toml")
    run, _ = train(cfg)
    trained = load_run(run, "latest")

    rows = load_training_data(cfg.data, cfg.run.seed).train  # the rows the run saw, in its order
    det = NRFDetector(network="mnist", sampler="sgld", epochs=2, random_state=0).fit(rows.numpy())
    assert det.n_iter_ == 4
    for name, module in (("energy", trained.energy), ("generator", trained.generator)):  # type: ignore[attr-defined]
        theirs = dict(getattr(det.objective_, name).named_parameters())
        for key, value in module.named_parameters():
            torch.testing.assert_close(value, theirs[key], atol=0, rtol=0, msg=f"{name}.{key}")
    # the parameter average is what both keep; and the two iterations more did move it
    assert det._settings().ema == cfg.train.ema == 0.999
    shorter = NRFDetector(network="mnist", sampler="sgld", epochs=1, random_state=0).fit(rows.numpy())
    moved = [
        not torch.equal(a, b)
        for a, b in zip(
            shorter.objective_.energy.parameters(), det.objective_.energy.parameters(), strict=True
        )
        if a.requires_grad
    ]
    assert all(moved)
