"""Convergence diagnostics of MCMC chains: split R-hat and the effective sample size
(Gelman et al., "Bayesian Data Analysis", 3rd ed., section 11.4-11.5; Geyer's initial
monotone sequence estimator, as in Stan).

A trace is an array ``(m chains, n draws)`` of one scalar per state (e.g. the energy of
each chain's position). Split R-hat cuts every chain in halves (2m chains of n' = n // 2
draws) and compares the between- and within-chain variances:

    W = mean_j s_j^2,   B = n' var_j(mean_j),   var+ = (n' - 1) / n' W + B / n',
    R-hat = sqrt(var+ / W)         (1 when the chains agree; > 1.01-1.1 when they do not).

The effective sample size of the pooled draws is m n / tau with
tau = -1 + 2 sum_{k} (rho_{2k} + rho_{2k+1}), the autocorrelations rho_t = 1 - (W - mean_j
acov_j(t)) / var+ combined over chains, the pair sums truncated at the first negative one
and made non-increasing (Geyer 1992).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _trace(values: Any, min_draws: int) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"trace must have shape (chains, draws), got {arr.shape}")
    if arr.shape[1] < min_draws:
        raise ValueError(f"trace must have at least {min_draws} draws per chain, got {arr.shape[1]}")
    if not np.isfinite(arr).all():
        raise FloatingPointError("the trace holds non-finite values")
    return arr


def _split(arr: np.ndarray) -> np.ndarray:
    half = arr.shape[1] // 2
    return np.concatenate([arr[:, :half], arr[:, arr.shape[1] - half :]], axis=0)


def _variances(arr: np.ndarray) -> tuple[float, float]:
    """(W, var+) of chains ``arr``."""
    n = arr.shape[1]
    w = float(arr.var(axis=1, ddof=1).mean())
    b = n * float(arr.mean(axis=1).var(ddof=1)) if arr.shape[0] > 1 else 0.0
    return w, (n - 1) / n * w + b / n


def split_rhat(trace: Any) -> float:
    """Split R-hat of ``trace`` ``(chains, draws)`` (one chain is split in two); ``inf`` when
    every half is constant but the halves differ, 1 when all draws are equal."""
    arr = _split(_trace(trace, 4))
    w, var_plus = _variances(arr)
    if w == 0.0:
        return 1.0 if var_plus == 0.0 and float(np.ptp(arr)) == 0.0 else float("inf")
    return float(np.sqrt(var_plus / w))


def _autocovariance(x: np.ndarray) -> np.ndarray:
    """Autocovariances of each row for lags 0..n-1 (biased, by FFT)."""
    n = x.shape[1]
    centred = x - x.mean(axis=1, keepdims=True)
    size = 1 << (2 * n - 1).bit_length()
    f = np.fft.rfft(centred, size, axis=1)
    return np.fft.irfft(f * np.conj(f), size, axis=1)[:, :n] / n


def effective_sample_size(trace: Any) -> float:
    """Effective sample size of all draws of ``trace`` ``(chains, draws)``."""
    arr = _trace(trace, 4)
    m, n = arr.shape
    w, var_plus = _variances(arr)
    if var_plus == 0.0:
        return float(m * n)
    acov = _autocovariance(arr)
    rho = 1.0 - (w - acov.mean(axis=0) * n / (n - 1)) / var_plus
    rho[0] = 1.0
    pairs = rho[: 2 * (n // 2)].reshape(-1, 2).sum(axis=1)
    positive = np.nonzero(pairs < 0)[0]
    pairs = pairs[: positive[0]] if positive.size else pairs
    pairs = np.minimum.accumulate(pairs)
    tau = max(-1.0 + 2.0 * float(pairs.sum()), 1.0 / np.log10(max(m * n, 10)))
    return float(m * n / tau)
