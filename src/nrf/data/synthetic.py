"""Synthetic data sets with known mode centres (for mode-coverage metrics and tests).

Every function is deterministic for a given ``torch.Generator`` and returns a
:class:`MixtureData` holding the points, each point's mode label, the mode centres and
the per-mode standard deviation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from nrf._checks import check_positive, check_positive_int


@dataclass(frozen=True)
class MixtureData:
    """Points drawn from an isotropic Gaussian mixture with known centres.

    Attributes
    ----------
    x:
        ``(n, d)`` points.
    labels:
        ``(n,)`` index of the mode each point was drawn from.
    centres:
        ``(K, d)`` mode centres.
    std:
        Standard deviation of every mode.
    """

    x: torch.Tensor
    labels: torch.Tensor
    centres: torch.Tensor
    std: float

    def __len__(self) -> int:
        return int(self.x.shape[0])


def _draw(
    centres: torch.Tensor,
    std: float,
    per_mode: int,
    generator: torch.Generator | None,
    dtype: torch.dtype,
) -> MixtureData:
    """``per_mode`` points around each centre, grouped by mode (labels 0,0,...,1,1,...)."""
    k, d = centres.shape
    labels = torch.arange(k).repeat_interleave(per_mode)
    noise = torch.randn(k * per_mode, d, generator=generator, dtype=dtype)
    return MixtureData(
        x=centres.to(dtype)[labels] + std * noise, labels=labels, centres=centres.to(dtype), std=std
    )


def gmm32_centres() -> torch.Tensor:
    """The 32 mode centres of Inclusive-NRF's toy GMM (authors' layout).

    Eight modes on each of four circles: radii 2 and 4 at angles k*pi/4, radii 3 and 5
    at angles (2k+1)*pi/8, k = 0..7. Ordered by radius, then angle.
    """
    centres = []
    for radius in (2.0, 3.0, 4.0, 5.0):
        offset = 0.0 if radius in (2.0, 4.0) else math.pi / 8
        for k in range(8):
            angle = k * math.pi / 4 + offset
            centres.append((radius * math.cos(angle), radius * math.sin(angle)))
    return torch.tensor(centres, dtype=torch.float64)


def gmm32(
    per_mode: int = 50,
    std: float = 0.1,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> MixtureData:
    """The 32-mode GMM of Inclusive-NRF Section V-A: 1,600 points, 50 per mode, sigma 0.1.

    >>> data = gmm32(generator=torch.Generator().manual_seed(0))
    >>> data.x.shape, data.centres.shape
    (torch.Size([1600, 2]), torch.Size([32, 2]))
    """
    check_positive_int("per_mode", per_mode)
    check_positive("std", std)
    return _draw(gmm32_centres(), std, per_mode, generator, dtype)


def ring8(
    per_mode: int = 250,
    radius: float = 2.0,
    std: float = 0.02,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> MixtureData:
    """Eight Gaussians evenly spaced on a circle of ``radius`` (angles k*pi/4)."""
    check_positive_int("per_mode", per_mode)
    check_positive("radius", radius)
    check_positive("std", std)
    angles = torch.arange(8, dtype=torch.float64) * (math.pi / 4)
    centres = radius * torch.stack([angles.cos(), angles.sin()], dim=1)
    return _draw(centres, std, per_mode, generator, dtype)


def grid25(
    per_mode: int = 100,
    spacing: float = 1.0,
    std: float = 0.05,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> MixtureData:
    """A 5 x 5 grid of Gaussians at {-2, -1, 0, 1, 2}^2 * ``spacing``."""
    check_positive_int("per_mode", per_mode)
    check_positive("spacing", spacing)
    check_positive("std", std)
    ticks = (torch.arange(5, dtype=torch.float64) - 2) * spacing
    gx, gy = torch.meshgrid(ticks, ticks, indexing="ij")
    centres = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
    return _draw(centres, std, per_mode, generator, dtype)


def bimodal1d(
    n: int = 1000,
    means: tuple[float, float] = (-2.0, 2.0),
    std: float = 0.5,
    weight: float = 0.5,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> MixtureData:
    """A 1-D two-component mixture: ``weight`` N(means[0], std^2) + (1 - weight) N(means[1], std^2).

    Component sizes are round(weight * n) and the rest, so the data are exactly balanced
    as asked (not a binomial draw).
    """
    check_positive_int("n", n)
    check_positive("std", std)
    if not 0.0 < weight < 1.0:
        raise ValueError(f"weight must be in (0, 1), got {weight!r}")
    n0 = round(weight * n)
    centres = torch.tensor([[means[0]], [means[1]]], dtype=torch.float64)
    labels = torch.cat([torch.zeros(n0, dtype=torch.long), torch.ones(n - n0, dtype=torch.long)])
    noise = torch.randn(n, 1, generator=generator, dtype=dtype)
    return MixtureData(
        x=centres.to(dtype)[labels] + std * noise, labels=labels, centres=centres.to(dtype), std=std
    )
