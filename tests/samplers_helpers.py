"""Shared pieces of the sampler tests: Gaussian moment checks (exact moments in closed
form), binomial checks, and a one-thread fixture."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Small tensors: one intra-op thread is faster, and much faster on a busy machine
    (autouse in every module that imports it)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def gaussian_moment_check(
    samples: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor, z: float = 4.0
) -> None:
    """Assert sample mean and covariance are within ``z`` Monte-Carlo standard errors.

    For n independent draws of N(mean, cov): se(mean_i) = sqrt(S_ii / n) and
    se(cov_ij) = sqrt((S_ii S_jj + S_ij^2) / n).
    """
    n = samples.shape[0]
    emp_mean = samples.mean(0)
    emp_cov = torch.cov(samples.T)
    d = torch.diagonal(cov)
    se_mean = torch.sqrt(d / n)
    se_cov = torch.sqrt((torch.outer(d, d) + cov**2) / n)
    bad_mean = (emp_mean - mean).abs() > z * se_mean
    bad_cov = (emp_cov - cov).abs() > z * se_cov
    assert not bad_mean.any(), f"mean off: {emp_mean.tolist()} vs {mean.tolist()} (se {se_mean.tolist()})"
    assert not bad_cov.any(), f"cov off:\n{emp_cov}\nvs\n{cov}\nse\n{se_cov}"


def binomial_check(hits: torch.Tensor, p: float, z: float = 4.0) -> None:
    n = hits.numel()
    frac = float(hits.float().mean())
    se = math.sqrt(p * (1 - p) / n)
    assert abs(frac - p) < z * se, f"fraction {frac:.4f} vs exact {p:.4f} (se {se:.4f})"


def normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))
