"""Multi-step rollout metrics of transition models (001_… Fig. 8, 002_… Fig. 13).

* :func:`rollout_mse`: the mean squared error of predicted states h steps after the last
  true context state, per horizon h = 1..H (mean over rollouts and state dimensions);
* :func:`frechet_distance`: the Fréchet distance between Gaussians fitted to two sets of
  states (Dowson & Landau 1982),
  ||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^{1/2});
* :func:`frechet_per_step`: that distance between the predicted and the true states at each
  step of a set of rollouts (002_…: "between predicted and ground distributions across all
  states at timestep t"), whose mean over steps is the paper's summary figure.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import linalg


def _as_numpy(x: torch.Tensor | np.ndarray, name: str) -> np.ndarray:
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: contains NaN or inf")
    return a.astype(np.float64)


def _check_pair(pred: np.ndarray, true: np.ndarray) -> None:
    if pred.ndim != 3 or pred.shape != true.shape:
        raise ValueError(
            "predicted and true rollouts must both be (rollouts, steps, dims), "
            f"got {pred.shape} and {true.shape}"
        )


def rollout_mse(predicted: torch.Tensor | np.ndarray, true: torch.Tensor | np.ndarray) -> np.ndarray:
    """Per-horizon MSE ``(steps,)`` of rollouts ``(n, steps, d)`` against the truth.

    >>> rollout_mse(np.zeros((2, 3, 1)), np.ones((2, 3, 1))).tolist()
    [1.0, 1.0, 1.0]
    """
    p, t = _as_numpy(predicted, "predicted"), _as_numpy(true, "true")
    _check_pair(p, t)
    out: np.ndarray = ((p - t) ** 2).mean(axis=(0, 2))
    return out


def frechet_distance(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to the rows of ``a`` and ``b`` ``(n, d)``
    (sample means and covariances; at least 2 rows each).

    >>> round(frechet_distance(np.eye(3), np.eye(3) + 1.0), 6)
    3.0
    """
    x, y = _as_numpy(a, "a"), _as_numpy(b, "b")
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or min(len(x), len(y)) < 2:
        raise ValueError(f"a and b must be (n >= 2, d) with the same d, got {x.shape} and {y.shape}")
    mu = x.mean(0) - y.mean(0)
    sa, sb = np.atleast_2d(np.cov(x, rowvar=False)), np.atleast_2d(np.cov(y, rowvar=False))
    root = linalg.sqrtm(sa @ sb)
    if np.iscomplexobj(root):
        root = root.real  # round-off of a nearly singular product
    return float(mu @ mu + np.trace(sa) + np.trace(sb) - 2.0 * np.trace(root))


def frechet_per_step(predicted: torch.Tensor | np.ndarray, true: torch.Tensor | np.ndarray) -> np.ndarray:
    """Fréchet distance ``(steps,)`` between predicted and true states at each step of
    rollouts ``(n, steps, d)`` (the n rollouts are the samples of each step's distribution)."""
    p, t = _as_numpy(predicted, "predicted"), _as_numpy(true, "true")
    _check_pair(p, t)
    return np.array([frechet_distance(p[:, s], t[:, s]) for s in range(p.shape[1])])
