"""From anomaly scores to labels, probabilities and confidences (PyOD's conventions).

All functions are pure numpy; ``train_scores`` are the detector's scores on its training
data (``decision_scores_``), higher = more anomalous.

* threshold: the ``100 (1 - contamination)`` th percentile of the training scores;
  a row is an outlier (1) if its score is strictly above it.
* ``linear`` probability: the score min-max scaled with the training scores' range,
  clipped to [0, 1].
* ``unify`` probability (Kriegel et al., 2011): erf((s - mu) / (sigma sqrt 2)) clipped to
  [0, 1], with mu, sigma the mean and standard deviation of the training scores (for
  constant training scores, sigma = 0, its limit: 1 above mu, 0 otherwise).
* confidence (ExCeeD, Perini et al., 2020): with n training scores and m of them <= s,
  p = (1 + m) / (2 + n) and c = 1 - BinomCDF(n - floor(n contamination); n, p), the
  probability that the row keeps its label under resampling of the training set; reported
  as c for predicted outliers and 1 - c for inliers.
"""

from __future__ import annotations

import numpy as np
from scipy.special import erf
from scipy.stats import binom

from nrf._checks import check_choice

PROBA_METHODS = ("linear", "unify")


def score_threshold(train_scores: np.ndarray, contamination: float) -> float:
    """The score above which a row is labelled an outlier.

    >>> score_threshold(np.arange(10.0), 0.1)
    8.1
    """
    return float(np.percentile(train_scores, 100.0 * (1.0 - contamination)))


def outlier_proba(scores: np.ndarray, train_scores: np.ndarray, method: str = "linear") -> np.ndarray:
    """Probabilities ``(n, 2)``: column 0 inlier, column 1 outlier."""
    check_choice("method", method, PROBA_METHODS)
    scores = np.asarray(scores, dtype=np.float64)
    if method == "linear":
        lo, hi = float(np.min(train_scores)), float(np.max(train_scores))
        span = hi - lo if hi > lo else 1.0
        p = ((scores - lo) / span).clip(0.0, 1.0)
    else:
        mu, sigma = float(np.mean(train_scores)), float(np.std(train_scores))
        if sigma > 0:
            p = erf((scores - mu) / (sigma * np.sqrt(2.0))).clip(0.0, 1.0)
        else:  # constant training scores: the sigma -> 0 limit, a step at mu
            p = (scores > mu).astype(np.float64)
    return np.stack([1.0 - p, p], axis=1)


def outlier_confidence(
    scores: np.ndarray, train_scores: np.ndarray, contamination: float, threshold: float
) -> np.ndarray:
    """Confidence in [0, 1] of each row's predicted label (ExCeeD)."""
    ordered = np.sort(np.asarray(train_scores, dtype=np.float64))
    n = ordered.size
    below = np.searchsorted(ordered, np.asarray(scores, dtype=np.float64), side="right")
    posterior = (1.0 + below) / (2.0 + n)
    confidence = 1.0 - binom.cdf(n - int(n * contamination), n, posterior)
    outlier = np.asarray(scores) > threshold
    return np.where(outlier, confidence, 1.0 - confidence)
