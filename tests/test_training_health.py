"""Training-health figures: kernel Stein discrepancy, split R-hat, ESS, the energy figures,
the flags, and the detector's history, warnings and held-out selection."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from nrf.applications import NRFDetector
from nrf.metrics.chains import effective_sample_size, split_rhat
from nrf.metrics.stein import kernel_stein_discrepancy
from nrf.metrics.training_health import (
    HealthRules,
    energy_shift,
    health_flags,
    heldout_rank,
    heldout_shift,
    history_flags,
    rank_stability,
    tail_stability,
)


def test_ksd_is_small_for_the_model_and_grows_with_a_shift() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 3, generator=g)
    score = lambda z: -z  # noqa: E731 - the standard normal's score
    right = kernel_stein_discrepancy(x, score)
    wrong = kernel_stein_discrepancy(x + 1.0, score)
    assert wrong > 3 * right
    assert abs(kernel_stein_discrepancy(x, score, statistic="u")) < 0.02  # unbiased: about 0
    assert kernel_stein_discrepancy(x + 1.0, score, statistic="u") > 0.1
    with pytest.raises(ValueError, match="beta"):
        kernel_stein_discrepancy(x, score, beta=0.5)
    with pytest.raises(FloatingPointError):
        kernel_stein_discrepancy(torch.full((4, 3), float("nan")), score)


def test_rhat_and_ess_on_known_chains() -> None:
    rng = np.random.RandomState(0)
    iid = rng.randn(4, 2000)
    assert split_rhat(iid) == pytest.approx(1.0, abs=0.01)
    assert effective_sample_size(iid) == pytest.approx(8000, rel=0.15)
    phi = 0.9  # AR(1): ESS = n (1 - phi) / (1 + phi)
    ar = np.zeros((4, 4000))
    for t in range(1, 4000):
        ar[:, t] = phi * ar[:, t - 1] + rng.randn(4)
    assert effective_sample_size(ar) == pytest.approx(16000 * (1 - phi) / (1 + phi), rel=0.3)
    apart = iid + np.arange(4)[:, None] * 3.0  # chains stuck in different places
    assert split_rhat(apart) > 2.0
    trend = np.linspace(0, 10, 1000)[None, :] + 0.1 * rng.randn(2, 1000)  # not stationary
    assert split_rhat(trend) > 1.5
    with pytest.raises(ValueError, match="at least 4 draws"):
        split_rhat(np.zeros((2, 3)))


def test_energy_figures() -> None:
    rng = np.random.RandomState(0)
    e = rng.randn(500)
    assert rank_stability(e, 2 * e + 5) == pytest.approx(1.0)
    assert abs(rank_stability(e, rng.randn(500))) < 0.15
    assert energy_shift(e, e + np.std(e)) == pytest.approx(1.0)
    assert heldout_shift(e, e + 2 * np.std(e)) == pytest.approx(2.0)
    assert heldout_rank(e, e) == pytest.approx(0.5, abs=0.01)
    assert heldout_rank(e, e + 100) == 1.0
    assert tail_stability(e, 2 * e + 5) == 1.0
    assert tail_stability(e, -e) == 0.0
    assert abs(tail_stability(e, rng.randn(500)) - 0.1) < 0.1
    # near-ties in the bulk reorder at random (rank correlation low), the head stays
    bulk = np.r_[1e-6 * rng.randn(900), 1.0 + rng.rand(100)]
    moved = bulk + np.r_[1e-5 * rng.randn(900), np.zeros(100)]
    assert rank_stability(bulk, moved) < 0.5
    assert tail_stability(bulk, moved) == 1.0
    with pytest.raises(ValueError, match="share"):
        tail_stability(e, e, share=1.5)
    figures = {"rank_stability": 0.3, "tail_stability": 0.4, "heldout_rank": 0.5, "energy_shift": 0.1}
    flags = health_flags(figures)
    assert len(flags) == 1
    assert flags[0].startswith("tail_stability 0.400")
    assert health_flags({"rank_stability": 0.3}) == []  # reported only by default
    checks = [{"tail_stability": 0.2}, {"tail_stability": 0.9}]  # the last check alone looks fine
    assert history_flags(checks)[0].startswith("tail_stability 0.200")
    assert history_flags(checks, HealthRules(window=1)) == []
    assert history_flags([]) == []
    strict = HealthRules(min_rank_stability=0.9)
    assert health_flags({"rank_stability": 0.3}, strict)[0].startswith("rank_stability")
    assert health_flags({"energy_shift": 5.0}) == []  # the offset is arbitrary: reported only
    assert health_flags({"rhat": 3.0}) == []  # R-hat is reported, flagged only on request
    assert health_flags({"rhat": 3.0}, HealthRules(max_rhat=1.2))[0].startswith("rhat")


def blobs(n: int = 300, d: int = 5) -> np.ndarray:
    return (3.0 + 10.0 * np.random.RandomState(0).randn(n, d)).astype(np.float32)


def test_default_detector_trains_enough_and_logs_health() -> None:
    det = NRFDetector(random_state=0).fit(blobs())
    assert det.n_iter_ >= 1000  # 270 rows = 1 batch per epoch: raised to the minimum iterations
    checked = [e for e in det.history_ if "energy_mean" in e]
    assert 20 <= len(checked) <= 26
    last = checked[-1]
    for key in ("rank_stability", "tail_stability", "heldout_rank", "heldout_loss", "ess", "rhat", "ksd"):
        assert np.isfinite(last[key]), key
    assert last["rank_stability"] > 0.9
    assert det.health_flags_ == []
    assert det.scale_offset_.shape == (5,)
    short = NRFDetector(epochs=3, random_state=0).fit(blobs())
    assert short.n_iter_ == 3  # epochs given: kept as given


def test_selection_best_keeps_the_lowest_heldout_loss() -> None:
    det = NRFDetector(selection="best", epochs=30, random_state=0).fit(blobs())
    losses = [(i + 1, e["heldout_loss"]) for i, e in enumerate(det.history_) if "heldout_loss" in e]
    assert det.selected_epoch_ == min(losses, key=lambda p: p[1])[0]
    with pytest.raises(ValueError, match="validation_fraction > 0"):
        NRFDetector(selection="best", validation_fraction=0.0).fit(blobs())
    with pytest.raises(ValueError, match="held-out loss"):
        NRFDetector(selection="best", method="inclusive").fit(blobs())


def test_a_swinging_fit_is_flagged_with_a_warning() -> None:
    # inclusive-NRF at a constant, high learning rate without averaging: its ranking swings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        det = NRFDetector(network="tabular", lr=0.05, lr_schedule="constant", ema="off", epochs=50,
                          random_state=0).fit(blobs())  # fmt: skip
    assert det.health_flags_, det.history_[-1]
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert any("diagnostics flag: tail_stability" in m for m in messages)


def test_detector_methods_and_options(tmp_path) -> None:
    x = blobs()
    for method in ("ssm", "nce"):
        det = NRFDetector(method=method, epochs=5, random_state=0).fit(x)
        assert np.isfinite(det.decision_function(x)).all()
    det = NRFDetector(objective_options={"sigmas": [0.05, 0.1]}, scaling="standard", epochs=2, random_state=0)
    det.fit(x)
    assert det.objective_.sigmas == (0.05, 0.1)
    det.save(tmp_path / "d")
    back = NRFDetector.load(tmp_path / "d")
    np.testing.assert_array_equal(back.decision_function(x), det.decision_function(x))
    assert back.selected_epoch_ == det.selected_epoch_
    with pytest.raises(ValueError, match="objective_options"):
        NRFDetector(objective_options={"sampler": 1}).fit(x)
    with pytest.raises(ValueError, match="scaling"):
        NRFDetector(scaling="robust").fit(x)
    with pytest.raises(ValueError, match="n_estimators > 1 is not available for method='nce'"):
        NRFDetector(method="nce", n_estimators=2).fit(x)
    assert NRFDetector()._settings((1, 28, 28)).preset.name == "mnist-stable"
