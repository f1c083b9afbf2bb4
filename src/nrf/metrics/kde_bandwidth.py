"""The Gaussian kernel density estimate of a sample and its bandwidth chosen by held-out
likelihood (likelihood cross-validation).

For reference rows r_1..r_m in d dimensions and a bandwidth h, the estimate is

    log p_h(x) = logsumexp_j( -|x - r_j|^2 / (2 h^2) ) - log m - d log h - (d / 2) log(2 pi),

a normalized density for every h, so its mean over held-out rows x_1..x_k,
LL(h) = 1/k sum_i log p_h(x_i), compares bandwidths on one scale (a larger h is not
rewarded for being smoother, nor a smaller one for sitting on the reference rows, since
held-out rows are not among them). :func:`likelihood_cv_bandwidth` returns the h of a
geometric grid with the largest LL(h).

This is the rule behind the detector's default noise level: denoising score matching at
one level sigma is minimized, on a sample, by the score of that sample convolved with
N(0, sigma^2 I), i.e. the energy -log p_sigma of the Gaussian kernel estimate with bandwidth
sigma (Vincent 2011; see :mod:`nrf.objectives.denoising_score_matching`), so choosing sigma
is choosing that estimate's bandwidth, and the held-out likelihood is the criterion that
ranks them fairly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from nrf._checks import check_positive_int

GRID_SPAN = (1e-3, 3.0)  # grid of bandwidths, as multiples of the rows' RMS feature spread
GRID_POINTS = 43  # a ratio of about 1.2 between neighbours


@dataclass(frozen=True)
class BandwidthChoice:
    """The chosen ``bandwidth``, the ``grid`` tried and each one's held-out mean
    ``log_likelihood``; ``at_edge`` when the best is the grid's smallest or largest."""

    bandwidth: float
    grid: tuple[float, ...]
    log_likelihood: tuple[float, ...]

    @property
    def at_edge(self) -> bool:
        best = self.log_likelihood.index(max(self.log_likelihood))
        return best in (0, len(self.grid) - 1)


def kde_log_density(
    query: torch.Tensor, reference: torch.Tensor, bandwidth: float, *, chunk: int = 1024
) -> torch.Tensor:
    """log p_h(x) of the module docstring for each row of ``query`` ``(n, d)``, with the
    rows of ``reference`` ``(m, d)`` as kernel centres and h = ``bandwidth``; computed in
    float64, ``chunk`` query rows at a time."""
    if query.dim() != 2 or reference.dim() != 2 or query.shape[1] != reference.shape[1]:
        raise ValueError(
            f"query and reference must be (n, d) and (m, d) with the same d, got "
            f"{tuple(query.shape)} and {tuple(reference.shape)}"
        )
    if not (isinstance(bandwidth, int | float) and bandwidth > 0 and math.isfinite(bandwidth)):
        raise ValueError(f"bandwidth must be a finite number > 0, got {bandwidth!r}")
    ref = reference.to(torch.float64)
    d, m = ref.shape[1], ref.shape[0]
    const = -math.log(m) - d * math.log(bandwidth) - 0.5 * d * math.log(2 * math.pi)
    out = []
    for start in range(0, query.shape[0], chunk):
        q = query[start : start + chunk].to(torch.float64)
        sq = torch.cdist(q, ref).pow(2)
        out.append(torch.logsumexp(-sq / (2.0 * bandwidth**2), dim=1) + const)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


def bandwidth_grid(reference: torch.Tensor, points: int = GRID_POINTS) -> tuple[float, ...]:
    """``points`` bandwidths, geometric from 1e-3 to 3 times the rows' RMS feature spread
    sqrt(mean_j Var(x_j)) (1 for rows without spread)."""
    check_positive_int("points", points)
    spread = float(reference.to(torch.float64).var(dim=0, unbiased=False).mean().sqrt())
    if not spread > 0:
        spread = 1.0
    low, high = GRID_SPAN
    if points == 1:
        return (spread * low,)
    ratio = (high / low) ** (1.0 / (points - 1))
    return tuple(spread * low * ratio**k for k in range(points))


def likelihood_cv_bandwidth(
    reference: torch.Tensor, heldout: torch.Tensor, grid: tuple[float, ...] | None = None
) -> BandwidthChoice:
    """The bandwidth of ``grid`` (default :func:`bandwidth_grid` of ``reference``) whose
    kernel estimate on ``reference`` gives the held-out rows ``heldout`` the largest mean
    log-density. Both must be finite ``(n, d)`` rows of the same width, at least 2
    reference rows and 1 held-out row."""
    if reference.dim() != 2 or reference.shape[0] < 2:
        raise ValueError(f"reference must be (m, d) rows with m >= 2, got shape {tuple(reference.shape)}")
    if heldout.dim() != 2 or heldout.shape[0] < 1:
        raise ValueError(f"heldout must be (k, d) rows with k >= 1, got shape {tuple(heldout.shape)}")
    for name, rows in (("reference", reference), ("heldout", heldout)):
        if not torch.isfinite(rows).all():
            raise ValueError(f"{name} holds NaN or infinite values")
    levels = bandwidth_grid(reference) if grid is None else tuple(float(h) for h in grid)
    if not levels or not all(h > 0 and math.isfinite(h) for h in levels):
        raise ValueError(f"grid must hold finite bandwidths > 0, got {levels!r}")
    ref = reference.to(torch.float64)
    sq = torch.cdist(heldout.to(torch.float64), ref).pow(2)  # once for every bandwidth
    d, m = ref.shape[1], ref.shape[0]
    scores = tuple(
        float((torch.logsumexp(-sq / (2.0 * h**2), dim=1) - math.log(m) - d * math.log(h)).mean())
        - 0.5 * d * math.log(2 * math.pi)
        for h in levels
    )
    best = max(range(len(levels)), key=lambda i: scores[i])
    return BandwidthChoice(levels[best], levels, scores)
