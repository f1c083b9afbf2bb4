"""Image preprocessing of the one-class benchmarks, as scikit-learn transformers.

Deep SVDD's MNIST / CIFAR-10 pipeline (Ruff et al., 2018), which Inclusive-NRF's Table V
follows for its baselines:

1. :class:`GlobalContrastNormalizer` (stateless, per image): subtract the image's mean
   and divide by its mean absolute deviation (``scale="l1"``) or by its L2 norm / d
   (``scale="l2"``);
2. :class:`ScalarMinMaxScaler`: one minimum and one maximum over *all* values of the
   training images (of the normal class), x -> (x - min) / (max - min).

Both take rows of any shape (``(n, d)`` or ``(n, C, H, W)``) and keep it.

>>> import numpy as np
>>> from sklearn.pipeline import make_pipeline
>>> x = np.random.RandomState(0).rand(5, 1, 4, 4)
>>> out = make_pipeline(GlobalContrastNormalizer(), ScalarMinMaxScaler()).fit_transform(x)
>>> out.shape, float(out.min()), float(out.max())
((5, 1, 4, 4), 0.0, 1.0)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted

from nrf._checks import check_choice


def _rows(X: Any) -> np.ndarray:
    return check_array(X, allow_nd=True, dtype=[np.float64, np.float32], input_name="X")


class GlobalContrastNormalizer(TransformerMixin, BaseEstimator):
    """Per-image global contrast normalization: (x - mean(x)) / scale(x - mean(x)).

    ``scale="l1"``: the mean absolute value; ``"l2"``: the L2 norm divided by the number
    of features (Deep SVDD's definitions). Constant images are only centred (scale 0
    would divide by zero).
    """

    def __init__(self, scale: str = "l1") -> None:
        self.scale = scale

    def fit(self, X: Any, y: Any = None) -> GlobalContrastNormalizer:
        check_choice("scale", self.scale, ("l1", "l2"))
        self.n_features_in_ = int(np.prod(_rows(X).shape[1:]))
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "n_features_in_")
        arr = _rows(X)
        flat = arr.reshape(arr.shape[0], -1)
        if flat.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {flat.shape[1]} features, but GlobalContrastNormalizer is expecting "
                f"{self.n_features_in_} features as input."
            )
        centred = flat - flat.mean(axis=1, keepdims=True)
        if self.scale == "l1":
            size = np.abs(centred).mean(axis=1, keepdims=True)
        else:
            size = np.sqrt((centred**2).sum(axis=1, keepdims=True)) / flat.shape[1]
        out = centred / np.where(size > 0, size, 1.0)
        return out.reshape(arr.shape).astype(arr.dtype, copy=False)


class ScalarMinMaxScaler(TransformerMixin, BaseEstimator):
    """(x - min) / (max - min) with one min and max over every value of the fitted rows."""

    def fit(self, X: Any, y: Any = None) -> ScalarMinMaxScaler:
        arr = _rows(X)
        self.n_features_in_ = int(np.prod(arr.shape[1:]))
        self.data_min_ = float(arr.min())
        self.data_max_ = float(arr.max())
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "data_min_")
        arr = _rows(X)
        if int(np.prod(arr.shape[1:])) != self.n_features_in_:
            raise ValueError(
                f"X has {int(np.prod(arr.shape[1:]))} features, but ScalarMinMaxScaler is expecting "
                f"{self.n_features_in_} features as input."
            )
        span = self.data_max_ - self.data_min_
        out = (arr - self.data_min_) / (span if span > 0 else 1.0)
        return out.astype(arr.dtype, copy=False)
