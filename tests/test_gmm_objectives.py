"""Every GMM method trains end to end from its shipped config (a few steps), and a short
inclusive-NRF run measurably improves the covered modes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nrf.data import gmm32
from nrf.metrics import mode_metrics
from nrf.training.build import build_objective
from nrf.training.config import load_config
from nrf.training.run import train

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        "gmm_gan",
        "gmm_wgan_gp",
        "gmm_exclusive",
        "gmm_exclusive_authors",
        "gmm_inclusive",
        "gmm_inclusive_authors",
        "gmm_cd",
    ],
)
def test_shipped_gmm_configs_train(tmp_path: Path, name: str) -> None:
    overrides = [f'run.out_dir="{tmp_path}"', "train.steps=30", "train.eval_every=0", "train.progress=false",
                 "train.checkpoint_every=30", "model.n_models=2"]  # fmt: skip
    _, final = train(load_config(CONFIGS / f"{name}.toml", overrides))
    assert 0.0 <= final["covered_modes"] <= 32.0
    assert 0.0 <= final["realistic_ratio"] <= 1.0


@pytest.mark.slow
def test_short_inclusive_run_improves_covered_modes(tmp_path: Path) -> None:
    """4 seeds trained together for 3,000 iterations (the authors' settings)."""
    overrides = [f'run.out_dir="{tmp_path}"', "train.steps=3000", "train.eval_every=0",
                 "train.progress=false", "train.checkpoint_every=3000", "model.n_models=4"]  # fmt: skip
    cfg = load_config(CONFIGS / "gmm_inclusive_authors.toml", overrides)
    torch.manual_seed(cfg.run.seed)
    untrained = build_objective(cfg)
    data = gmm32(generator=torch.Generator().manual_seed(0))
    untrained.initialize(data.x.repeat(4, 1))
    before = [
        mode_metrics(block, data.centres, data.std).covered_modes
        for block in untrained.sample(4 * 10_000, torch.Generator().manual_seed(1)).chunk(4)
    ]
    _, final = train(cfg)
    assert final["covered_modes"] > sum(before) / 4 + 3.0, (before, final)
