"""Mode coverage of samples from a mixture with known centres (Inclusive-NRF Table I).

A sample is *realistic* if it lies within ``n_std`` standard deviations (3 by default) of
its nearest mode centre. Samples are split into batches of ``batch_size`` (100); in each
batch a mode is *covered* if at least one realistic sample has it as nearest mode.
``covered_modes`` is the mean over batches (Table I uses 100 batches of 100), and
``realistic_ratio`` the fraction of realistic samples over all of them.

For the 32-mode GMM, exact draws give about 30.7 covered modes (the expected number of
distinct modes among 100 uniform draws of 32, 32 (1 - (31/32)^100) = 30.66) and a
realistic ratio of 1 - exp(-9/2) = 0.989 (a 2-D Gaussian within 3 sigma): the paper's
"oracle" row.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nrf._checks import check_positive, check_positive_int


@dataclass(frozen=True)
class ModeMetrics:
    """Covered modes (mean and sd over batches) and the realistic ratio."""

    covered_modes: float
    covered_modes_sd: float
    realistic_ratio: float
    n_batches: int


def nearest_mode(samples: torch.Tensor, centres: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of and distance to the nearest centre for every sample."""
    d = torch.cdist(samples.to(centres.dtype), centres)
    dist, idx = d.min(dim=1)
    return idx, dist


def mode_metrics(
    samples: torch.Tensor,
    centres: torch.Tensor,
    std: float,
    *,
    batch_size: int = 100,
    n_std: float = 3.0,
) -> ModeMetrics:
    """Covered modes per batch of ``batch_size`` and the realistic ratio of ``samples``.

    ``samples`` of shape ``(n, d)`` with ``n`` a multiple of ``batch_size``; ``centres``
    ``(K, d)``; ``std`` the modes' standard deviation.

    >>> c = torch.tensor([[0.0, 0.0], [5.0, 0.0]])
    >>> m = mode_metrics(torch.tensor([[0.1, 0.0], [9.0, 9.0]]), c, 0.1, batch_size=2)
    >>> m.covered_modes, m.realistic_ratio
    (1.0, 0.5)
    """
    check_positive_int("batch_size", batch_size)
    check_positive("std", std)
    check_positive("n_std", n_std)
    if samples.dim() != 2 or samples.shape[1] != centres.shape[1]:
        raise ValueError(f"samples must have shape (n, {centres.shape[1]}), got {tuple(samples.shape)}")
    n = samples.shape[0]
    if n == 0 or n % batch_size:
        raise ValueError(
            f"the number of samples ({n}) must be a positive multiple of batch_size ({batch_size})"
        )
    if not bool(torch.isfinite(samples).all()):
        raise ValueError("samples hold non-finite values")
    idx, dist = nearest_mode(samples.detach().cpu(), centres.detach().cpu())
    realistic = dist <= n_std * std
    k = centres.shape[0]
    batches = n // batch_size
    modes = torch.where(realistic, idx, torch.full_like(idx, k)).view(batches, batch_size)
    hits = torch.zeros(batches, k + 1, dtype=torch.bool)
    hits.scatter_(1, modes, True)
    covered = hits[:, :k].sum(1).double()
    sd = float(covered.std()) if batches > 1 else 0.0
    return ModeMetrics(float(covered.mean()), sd, float(realistic.double().mean()), batches)
