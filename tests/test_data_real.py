"""The loaders on the real files under $NRF_DATA_DIR.

Skipped when the data are not there, unless NRF_REQUIRE_REAL_DATA=1 (then they fail).
Run with e.g. ``NRF_DATA_DIR=/path/to/data pytest -m realdata``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from nrf.data import dataset_status, load_kddcup99, load_mnist
from nrf.data.kddcup import CATEGORICAL, CATEGORIES

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


def require(name: str) -> Path:
    """The data root holding data set ``name``, or skip (fail with NRF_REQUIRE_REAL_DATA=1)."""
    root = os.environ.get("NRF_DATA_DIR")
    if not root:
        reason = f"real {name} data: NRF_DATA_DIR is not set"
    else:
        status = dataset_status(name, root)
        if status.complete:
            return Path(root)
        reason = f"real {name} data: {', '.join(status.missing)} not found under NRF_DATA_DIR={root}"
    if os.environ.get("NRF_REQUIRE_REAL_DATA") == "1":
        pytest.fail(f"{reason} (NRF_REQUIRE_REAL_DATA=1)")
    pytest.skip(reason)


@pytest.mark.parametrize(("split", "n"), [("train", 60000), ("test", 10000)])
def test_mnist(split: str, n: int) -> None:
    require("mnist")
    data = load_mnist(split)  # md5 of every file verified (the default)
    assert data.images.shape == (n, 28, 28)
    assert data.images.dtype == np.uint8
    assert data.labels.shape == (n,)
    assert sorted(np.unique(data.labels).tolist()) == list(range(10))
    assert data.images.max() == 255
    assert data.images.min() == 0


def test_kddcup99() -> None:
    require("kddcup99")
    data = load_kddcup99(verify_sha256=True)
    assert data.features.shape == (494021, 118)
    assert data.features.dtype == np.float32
    assert len(data.feature_names) == 118
    assert int(data.labels.sum()) == 97278
    inliers = data.features[data.labels == 0]
    assert inliers.min() >= 0.0
    assert inliers.max() <= 1.0
    np.testing.assert_array_equal(data.features[:, 38:].sum(axis=1), np.full(494021, 3.0))
    assert sorted(set(data.raw_labels.tolist()))[:3] == ["back.", "buffer_overflow.", "ftp_write."]
    # the canonical category lists are exactly the values of this file: it loads with
    # unknown="error" (no value outside them) and every one of their columns is hot somewhere
    assert data.feature_names[38:] == tuple(f"{c}={v}" for c in CATEGORICAL for v in CATEGORIES[c])
    assert (data.features[:, 38:].sum(axis=0) > 0).all()
    assert {c: len(v) for c, v in CATEGORIES.items()} == {"protocol_type": 3, "service": 66, "flag": 11}


def test_mnist_rbm_config_runs_on_binarized_mnist(tmp_path: Path) -> None:
    from test_beam import run_config

    root = require("mnist")
    run_config("mnist_rbm", tmp_path, f"data.root={str(root)!r}", "data.limit=500",
               "model.energy_args.n_hidden=16")  # fmt: skip
