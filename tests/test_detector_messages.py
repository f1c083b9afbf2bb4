"""The detector's messages: an NCE fit whose classifier stays at chance is flagged, a 1-D
input is refused without dumping it, a missing save folder is named as missing."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import MinMaxScaler

from nrf.applications import NRFDetector


@pytest.mark.slow
def test_an_nce_fit_at_chance_is_flagged() -> None:
    X, y = load_breast_cancer(return_X_y=True)
    rows = MinMaxScaler().fit_transform(X[y == 1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        det = NRFDetector(method="nce", random_state=0).fit(rows)
    flags = [f for f in det.health_flags_ if f.startswith("noise_accuracy")]
    assert flags, det.health_flags_
    assert any("NCE classifier hardly tells" in str(w.message) for w in caught)
    accuracy = [h["noise_accuracy"] for h in det.history_ if "noise_accuracy" in h][-1]
    assert accuracy < 0.6


def test_a_one_dimensional_input_is_refused_in_one_short_line() -> None:
    with pytest.raises(ValueError, match="Expected 2D array") as info:
        NRFDetector(epochs=1).fit(np.arange(5000, dtype=float))
    message = str(info.value)
    assert "(5000,)" in message
    assert "X.reshape(-1, 1)" in message
    assert len(message) < 300


def test_loading_a_missing_folder_says_it_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such folder"):
        NRFDetector.load(tmp_path / "nothing")
