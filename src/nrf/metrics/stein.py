"""The kernel Stein discrepancy of samples against a model's score, with the inverse
multiquadric kernel (Liu, Lee & Jordan 2016; Chwialkowski et al. 2016; Gorham & Mackey 2017).

For samples x_1..x_n of a distribution q and the score s(x) = grad log p(x) = -grad E(x)
of the model p,

    KSD^2(q, p) = E_{x, y ~ q} u_p(x, y),
    u_p(x, y) = s(x)^T s(y) k(x, y) + s(x)^T grad_y k + s(y)^T grad_x k + tr(grad_x grad_y k),

which is 0 exactly when q = p (for the IMQ kernel k(x, y) = (c^2 + |x - y|^2)^beta with
beta in (-1, 0) it also detects non-convergence, Gorham & Mackey). With r^2 = |x - y|^2
and b = c^2 + r^2:

    grad_x k = 2 beta b^(beta-1) (x - y) = -grad_y k,
    tr(grad_x grad_y k) = -2 beta d b^(beta-1) - 4 beta (beta - 1) b^(beta-2) r^2.

The estimate is the V-statistic (the mean over all pairs, >= 0) or the U-statistic (pairs
i != j, unbiased, may be negative); :func:`kernel_stein_discrepancy` returns KSD, the
square root of the V-statistic, or the U-statistic of KSD^2.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from nrf._checks import check_positive

ScoreFn = Callable[[torch.Tensor], torch.Tensor]


def stein_kernel_matrix(
    x: torch.Tensor, score: torch.Tensor, *, c: float = 1.0, beta: float = -0.5
) -> torch.Tensor:
    """The (n, n) matrix u_p(x_i, x_j) for rows ``x`` and their scores ``score`` (same shape)."""
    if x.shape != score.shape:
        raise ValueError(f"score must have the shape of x {tuple(x.shape)}, got {tuple(score.shape)}")
    check_positive("c", c)
    if not -1.0 < beta < 0.0:
        raise ValueError(f"beta must be in (-1, 0) for the IMQ kernel, got {beta!r}")
    x = x.flatten(1).double()
    s = score.flatten(1).double()
    d = x.shape[1]
    diff = x.unsqueeze(1) - x.unsqueeze(0)  # x_i - x_j, (n, n, d)
    r2 = diff.pow(2).sum(-1)
    base = c**2 + r2
    k = base.pow(beta)
    dk = 2 * beta * base.pow(beta - 1)  # grad_x k = dk (x - y)
    ss = s @ s.T
    sx_gy = -(s.unsqueeze(1) * diff).sum(-1) * dk  # s(x_i)^T grad_y k
    sy_gx = (s.unsqueeze(0) * diff).sum(-1) * dk  # s(x_j)^T grad_x k
    trace = -2 * beta * d * base.pow(beta - 1) - 4 * beta * (beta - 1) * base.pow(beta - 2) * r2
    return ss * k + sx_gy + sy_gx + trace


def kernel_stein_discrepancy(
    x: torch.Tensor,
    score: torch.Tensor | ScoreFn,
    *,
    c: float = 1.0,
    beta: float = -0.5,
    statistic: str = "v",
) -> float:
    """KSD of the rows ``x`` against a model whose score at ``x`` is ``score`` (a tensor, or a
    function of ``x``): sqrt of the V-statistic (``statistic="v"``) or the U-statistic of
    KSD^2 (``"u"``). Costs O(n^2 d) memory: use a few hundred rows."""
    if x.dim() < 2 or x.shape[0] < 2:
        raise ValueError(f"x must hold at least 2 rows, got shape {tuple(x.shape)}")
    values = score(x) if callable(score) else score
    if not bool(torch.isfinite(values).all()) or not bool(torch.isfinite(x).all()):
        raise FloatingPointError("kernel_stein_discrepancy: the samples or their scores are not finite")
    u = stein_kernel_matrix(x.detach(), values.detach(), c=c, beta=beta)
    n = u.shape[0]
    if statistic == "v":
        return float(u.mean().clamp_min(0.0).sqrt())
    if statistic == "u":
        return float((u.sum() - torch.diagonal(u).sum()) / (n * (n - 1)))
    raise ValueError(f"statistic must be 'v' or 'u', got {statistic!r}")
