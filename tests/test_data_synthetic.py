"""Synthetic mixtures: layout of the centres, per-mode statistics, determinism, argument checks."""

from __future__ import annotations

import math

import pytest
import torch

from nrf.data import bimodal1d, gmm32, gmm32_centres, grid25, ring8


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_gmm32_centres_layout() -> None:
    c = gmm32_centres()
    assert c.shape == (32, 2)
    assert c.dtype == torch.float64
    radius = c.norm(dim=1)
    angle = torch.atan2(c[:, 1], c[:, 0]) % (2 * math.pi)
    for ring, r in enumerate((2.0, 3.0, 4.0, 5.0)):
        block = slice(8 * ring, 8 * ring + 8)
        torch.testing.assert_close(radius[block], torch.full((8,), r, dtype=torch.float64))
        offset = 0.0 if r in (2.0, 4.0) else math.pi / 8
        expected = torch.tensor([k * math.pi / 4 + offset for k in range(8)], dtype=torch.float64)
        torch.testing.assert_close(angle[block], expected)
    # radius 2 at angle 0 and radius 3 at angle pi/8
    torch.testing.assert_close(c[0], torch.tensor([2.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(
        c[8], torch.tensor([3 * math.cos(math.pi / 8), 3 * math.sin(math.pi / 8)], dtype=torch.float64)
    )
    assert torch.cdist(c, c).add(torch.eye(32, dtype=torch.float64) * 100).min() > 1.0


def test_gmm32_defaults() -> None:
    data = gmm32(generator=gen(0))
    assert data.x.shape == (1600, 2)
    assert len(data) == 1600
    assert data.x.dtype == torch.float32
    assert data.std == 0.1
    assert torch.bincount(data.labels).tolist() == [50] * 32
    assert data.labels.tolist() == sorted(data.labels.tolist())
    torch.testing.assert_close(data.centres, gmm32_centres().float())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gmm32_per_mode_std_and_means(seed: int) -> None:
    data = gmm32(generator=gen(seed), dtype=torch.float64)
    resid = data.x - data.centres[data.labels]
    n = 50 * 2  # both coordinates of a mode's 50 points
    se_std = 0.1 / math.sqrt(2 * (n - 1))  # standard error of a normal sample's std
    se_mean = 0.1 / math.sqrt(50)
    for k in range(32):
        r = resid[data.labels == k]
        std = r.pow(2).mean().sqrt().item()  # the mean is known (0)
        assert abs(std - 0.1) < 4 * se_std, (k, std)
        assert r.mean(dim=0).abs().max().item() < 4 * se_mean, k
    # pooled over all 3,200 coordinates the estimate is much tighter
    pooled = resid.pow(2).mean().sqrt().item()
    assert abs(pooled - 0.1) < 4 * 0.1 / math.sqrt(2 * 3199)


def test_gmm32_nearest_centre_is_the_label() -> None:
    data = gmm32(generator=gen(3))
    nearest = torch.cdist(data.x.double(), data.centres.double()).argmin(dim=1)
    assert (nearest == data.labels).float().mean().item() > 0.99


def test_gmm32_custom_arguments() -> None:
    data = gmm32(per_mode=3, std=0.5, generator=gen(0), dtype=torch.float64)
    assert data.x.shape == (96, 2)
    assert data.x.dtype == torch.float64
    assert data.std == 0.5
    assert torch.bincount(data.labels).tolist() == [3] * 32


@pytest.mark.parametrize(
    "make", [gmm32, ring8, grid25, bimodal1d], ids=["gmm32", "ring8", "grid25", "bimodal1d"]
)
def test_seeding(make) -> None:
    a, b, c = make(generator=gen(7)), make(generator=gen(7)), make(generator=gen(8))
    assert torch.equal(a.x, b.x)
    assert torch.equal(a.labels, b.labels)
    assert not torch.equal(a.x, c.x)
    assert torch.equal(a.labels, c.labels)


def test_ring8() -> None:
    data = ring8(per_mode=20, radius=3.0, std=0.01, generator=gen(0))
    assert data.x.shape == (160, 2)
    assert data.centres.shape == (8, 2)
    angles = torch.arange(8, dtype=torch.float64) * math.pi / 4
    expected = 3.0 * torch.stack([angles.cos(), angles.sin()], dim=1)
    torch.testing.assert_close(data.centres.double(), expected, atol=1e-6, rtol=0)
    assert torch.bincount(data.labels).tolist() == [20] * 8
    assert (data.x - data.centres[data.labels]).abs().max() < 0.01 * 6
    assert ring8().x.shape == (2000, 2)


def test_grid25() -> None:
    data = grid25(per_mode=4, spacing=2.0, std=0.01, generator=gen(0))
    assert data.x.shape == (100, 2)
    ticks = [-4.0, -2.0, 0.0, 2.0, 4.0]
    expected = torch.tensor([[a, b] for a in ticks for b in ticks])
    torch.testing.assert_close(data.centres, expected)
    assert torch.bincount(data.labels).tolist() == [4] * 25
    assert (data.x - data.centres[data.labels]).abs().max() < 0.01 * 6
    assert grid25().x.shape == (2500, 2)


@pytest.mark.parametrize(
    ("n", "weight", "n0"), [(1000, 0.5, 500), (1000, 0.3, 300), (7, 0.25, 2), (999, 0.75, 749)]
)
def test_bimodal1d_counts_are_exact(n: int, weight: float, n0: int) -> None:
    data = bimodal1d(n=n, weight=weight, generator=gen(0))
    assert data.x.shape == (n, 1)
    assert (data.labels == 0).sum().item() == n0
    assert (data.labels == 1).sum().item() == n - n0


def test_bimodal1d_components() -> None:
    data = bimodal1d(n=4000, means=(-3.0, 1.0), std=0.25, weight=0.25, generator=gen(1))
    torch.testing.assert_close(data.centres, torch.tensor([[-3.0], [1.0]]))
    x0, x1 = data.x[data.labels == 0], data.x[data.labels == 1]
    assert abs(x0.mean().item() + 3.0) < 4 * 0.25 / math.sqrt(1000)
    assert abs(x1.mean().item() - 1.0) < 4 * 0.25 / math.sqrt(3000)
    assert abs(x1.std().item() - 0.25) < 4 * 0.25 / math.sqrt(2 * 2999)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: gmm32(per_mode=0), "per_mode"),
        (lambda: gmm32(std=-1), "std"),
        (lambda: gmm32(std=0.0), "std"),
        (lambda: gmm32(std=float("nan")), "std"),
        (lambda: ring8(per_mode=0), "per_mode"),
        (lambda: ring8(radius=-2.0), "radius"),
        (lambda: ring8(std=-1), "std"),
        (lambda: grid25(spacing=0.0), "spacing"),
        (lambda: grid25(std=-1), "std"),
        (lambda: bimodal1d(n=0), "n"),
        (lambda: bimodal1d(std=-1), "std"),
        (lambda: bimodal1d(weight=1.5), "weight"),
        (lambda: bimodal1d(weight=0.0), "weight"),
        (lambda: bimodal1d(weight=1.0), "weight"),
    ],
)
def test_invalid_arguments(call, name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name} must"):
        call()


def test_non_int_per_mode_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="per_mode"):
        gmm32(per_mode=2.5)
