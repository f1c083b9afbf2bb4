"""scikit-learn's bundled 8 x 8 handwritten digits (1,797 images, no download)."""

from __future__ import annotations

import numpy as np

from nrf.data.mnist import ImageSet


def load_digits() -> ImageSet:
    """Return images ``(1797, 8, 8)`` uint8 with values 0-16 and labels ``(1797,)`` int64."""
    from sklearn.datasets import load_digits as _load

    bunch = _load()
    return ImageSet(images=bunch.images.astype(np.uint8), labels=bunch.target.astype(np.int64))
