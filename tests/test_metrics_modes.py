"""Covered modes and realistic ratio on hand-made sample sets."""

from __future__ import annotations

import math

import pytest
import torch

from nrf.data import gmm32, gmm32_centres
from nrf.metrics import mode_metrics

CENTRES = gmm32_centres()


def test_all_samples_on_one_mode() -> None:
    samples = CENTRES[3].expand(200, 2).clone()
    m = mode_metrics(samples, CENTRES, 0.1)
    assert m.covered_modes == 1.0
    assert m.realistic_ratio == 1.0
    assert m.n_batches == 2


def test_every_mode_once_per_batch_and_far_samples() -> None:
    batch = torch.cat([CENTRES, torch.full((68, 2), 50.0)])  # 32 on the modes, 68 far away
    m = mode_metrics(batch, CENTRES, 0.1)
    assert m.covered_modes == 32.0
    assert m.realistic_ratio == pytest.approx(0.32)


def test_three_sigma_boundary() -> None:
    inside = CENTRES[0] + torch.tensor([0.29, 0.0], dtype=CENTRES.dtype)
    outside = CENTRES[0] + torch.tensor([0.31, 0.0], dtype=CENTRES.dtype)
    m = mode_metrics(torch.stack([inside, outside]), CENTRES, 0.1, batch_size=2)
    assert m.realistic_ratio == 0.5
    assert m.covered_modes == 1.0


def test_oracle_matches_closed_form() -> None:
    data = gmm32(generator=torch.Generator().manual_seed(0))
    idx = torch.randint(0, 1600, (10_000,), generator=torch.Generator().manual_seed(1))
    m = mode_metrics(data.x[idx], data.centres, data.std)
    expected_modes = 32 * (1 - (31 / 32) ** 100)  # distinct modes among 100 uniform draws
    assert abs(m.covered_modes - expected_modes) < 4 * m.covered_modes_sd / math.sqrt(100)
    p = 1 - math.exp(-4.5)  # 2-D Gaussian within 3 sigma
    assert abs(m.realistic_ratio - p) < 4 * math.sqrt(p * (1 - p) / 10_000)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="multiple of batch_size"):
        mode_metrics(torch.zeros(150, 2), CENTRES, 0.1)
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        mode_metrics(torch.zeros(100, 3), CENTRES, 0.1)
    with pytest.raises(ValueError, match="non-finite"):
        mode_metrics(torch.full((100, 2), float("nan")), CENTRES, 0.1)
