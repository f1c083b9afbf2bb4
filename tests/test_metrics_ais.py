"""AIS estimates of RBM log partition functions against exact enumeration, the error
bars, determinism, the log-likelihood and bad input."""

from __future__ import annotations

import copy
import itertools
import math

import pytest
import torch

from nrf.energies import RBM
from nrf.metrics import AISResult, ais_log_partition, rbm_log_likelihood


def make_rbm(
    visible: str, n_visible: int = 10, n_hidden: int = 8, weight_std: float = 1.0, seed: int = 0
) -> RBM:
    """Weights ~ N(0, weight_std^2), biases ~ N(0, 0.5^2), log variances ~ N(0, 0.3^2)."""
    g = torch.Generator().manual_seed(seed)
    rbm = RBM(n_visible, n_hidden, visible, weight_std=weight_std, generator=g)
    with torch.no_grad():
        rbm.visible_bias.copy_(0.5 * torch.randn(n_visible, generator=g))
        rbm.hidden_bias.copy_(0.5 * torch.randn(n_hidden, generator=g))
        if visible == "gaussian":
            rbm.log_var.copy_(0.3 * torch.randn(n_visible, generator=g))
    return rbm


def exact_log_z(rbm: RBM) -> float:
    """Enumeration in float64 (AIS computes in float64 too)."""
    with torch.no_grad():
        return copy.deepcopy(rbm).double().log_partition().item()


def training_rows(rbm: RBM, n: int = 500) -> torch.Tensor:
    """Rows standing in for a data set: base rates / means and scales that vary by unit."""
    g = torch.Generator().manual_seed(9)
    if rbm.gaussian:
        return torch.randn(n, rbm.n_visible, generator=g) * 1.5 + torch.linspace(-1, 1, rbm.n_visible)
    return torch.bernoulli(torch.linspace(0.05, 0.9, rbm.n_visible).expand(n, -1), generator=g)


def assert_within_error(result: AISResult, exact: float) -> None:
    assert abs(result.log_z - exact) <= 3 * result.log_z_sd, (result.log_z, result.log_z_sd, exact)
    assert result.log_z_low <= exact <= result.log_z_high


@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("base", ["uniform", "data"])
def test_ais_matches_enumeration(visible: str, base: str) -> None:
    rbm = make_rbm(visible)
    data = training_rows(rbm) if base == "data" else None
    result = ais_log_partition(
        rbm, 200, 1000, base=base, data=data, generator=torch.Generator().manual_seed(1)
    )
    assert_within_error(result, exact_log_z(rbm))
    assert result.n_chains == 200
    assert result.n_betas == 1000
    assert result.log_weights.shape == (200,)
    assert result.log_weights.dtype == torch.float64
    assert 1.0 <= result.ess <= 200.0


@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_ais_respects_centering_offsets(visible: str) -> None:
    """Moving the offsets changes E by a constant, so log Z moves too; AIS follows."""
    rbm = make_rbm(visible, seed=3)
    before = exact_log_z(rbm)
    rbm.set_offsets(torch.linspace(0.1, 0.9, 10), torch.full((8,), 0.5))
    exact = exact_log_z(rbm)
    assert abs(exact - before) > 0.5
    result = ais_log_partition(rbm, 200, 1000, generator=torch.Generator().manual_seed(2))
    assert_within_error(result, exact)


def test_harder_gaussian_rbm() -> None:
    """20 visible / 12 hidden Gaussian units with weights ~ N(0, 1.5^2): the weights are
    uneven (effective sample size well below the number of chains) and the estimate is
    still within its error bar."""
    rbm = make_rbm("gaussian", 20, 12, weight_std=1.5)
    result = ais_log_partition(rbm, 200, 3000, generator=torch.Generator().manual_seed(1))
    assert result.ess < 120
    assert_within_error(result, exact_log_z(rbm))


def test_error_bar_shrinks_with_betas_and_chains() -> None:
    rbm = make_rbm("bernoulli")
    few = ais_log_partition(rbm, 200, 100, generator=torch.Generator().manual_seed(4))
    many = ais_log_partition(rbm, 200, 2000, generator=torch.Generator().manual_seed(4))
    assert many.log_z_sd < 0.5 * few.log_z_sd
    assert many.ess > few.ess
    small = ais_log_partition(rbm, 50, 300, generator=torch.Generator().manual_seed(5))
    large = ais_log_partition(rbm, 800, 300, generator=torch.Generator().manual_seed(5))
    assert large.log_z_sd < 0.5 * small.log_z_sd  # 1 / sqrt(16) = 0.25 expected
    assert large.log_z_high - large.log_z_low < small.log_z_high - small.log_z_low


def test_seeded_runs_are_identical() -> None:
    rbm = make_rbm("gaussian")
    one = ais_log_partition(rbm, 20, 50, generator=torch.Generator().manual_seed(7))
    two = ais_log_partition(rbm, 20, 50, generator=torch.Generator().manual_seed(7))
    other = ais_log_partition(rbm, 20, 50, generator=torch.Generator().manual_seed(8))
    assert torch.equal(one.log_weights, two.log_weights)
    assert one.log_z == two.log_z
    assert not torch.equal(one.log_weights, other.log_weights)


def test_two_rung_ladder_is_plain_importance_sampling() -> None:
    """betas = [0, 1]: w = p*_1(v) / p*_0(v) for v from the uniform base, i.e.
    log w = -F(v) - n_hidden log 2, and log Z_hat = log mean exp(-F(v)) + n_visible log 2."""
    rbm = make_rbm("bernoulli", 6, 4, weight_std=0.5)
    result = ais_log_partition(rbm, 4000, betas=[0.0, 1.0], generator=torch.Generator().manual_seed(3))
    v = torch.bernoulli(
        torch.full((4000, 6), 0.5, dtype=torch.float64), generator=torch.Generator().manual_seed(3)
    )
    with torch.no_grad():
        expected = -rbm.double()(v) - 4 * math.log(2)
    torch.testing.assert_close(result.log_weights, expected)
    assert result.log_z_base == pytest.approx(10 * math.log(2))
    assert result.n_betas == 2


def test_given_ladder() -> None:
    """A Salakhutdinov & Murray style ladder (coarse, then finer near beta = 1)."""
    rbm = make_rbm("bernoulli", seed=1)
    betas = torch.cat(
        [torch.linspace(0, 0.5, 200)[:-1], torch.linspace(0.5, 0.9, 400)[:-1], torch.linspace(0.9, 1, 400)]
    )
    result = ais_log_partition(rbm, 200, betas=betas, generator=torch.Generator().manual_seed(1))
    assert result.n_betas == 998
    assert_within_error(result, exact_log_z(rbm))


@pytest.mark.slow
@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_default_ladder_on_larger_rbms(visible: str) -> None:
    """The default 10,000 betas on 30 / 20 visible units and 14 / 12 hidden units with
    large weights, starting from the data base rates."""
    rbm = make_rbm(
        visible,
        30 if visible == "bernoulli" else 20,
        14 if visible == "bernoulli" else 12,
        3.0 if visible == "bernoulli" else 1.5,
    )
    result = ais_log_partition(
        rbm, 300, base="data", data=training_rows(rbm), generator=torch.Generator().manual_seed(1)
    )
    assert result.n_betas == 10_000
    assert_within_error(result, exact_log_z(rbm))


def test_log_likelihood_normalizes() -> None:
    """exp(rbm_log_likelihood) of every visible state sums to 1 with the exact log Z."""
    rbm = make_rbm("bernoulli", 6, 4)
    log_z = exact_log_z(rbm)
    states = torch.tensor(list(itertools.product([0.0, 1.0], repeat=6)))
    total = sum(math.exp(rbm_log_likelihood(rbm, s[None], log_z)) for s in states)
    assert total == pytest.approx(1.0, abs=1e-5)
    rows = states[:10]
    with torch.no_grad():
        expected = float((-rbm(rows)).mean()) - log_z
    assert rbm_log_likelihood(rbm, rows, torch.tensor(log_z)) == pytest.approx(expected, abs=1e-5)
    estimate = ais_log_partition(rbm, 50, 100, generator=torch.Generator().manual_seed(0))
    assert rbm_log_likelihood(rbm, rows, estimate) == pytest.approx(
        expected + log_z - estimate.log_z, abs=1e-5
    )


def test_bad_arguments_are_named() -> None:
    rbm = make_rbm("bernoulli", 4, 3)
    gauss = make_rbm("gaussian", 4, 3)
    with pytest.raises(TypeError, match=r"rbm must be an nrf\.energies\.RBM, got Linear"):
        ais_log_partition(torch.nn.Linear(2, 2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"n_chains must be >= 2 \(the error bar needs a spread\), got 1"):
        ais_log_partition(rbm, 1)
    with pytest.raises(ValueError, match="n_chains must be an int >= 1, got 0"):
        ais_log_partition(rbm, 0)
    with pytest.raises(ValueError, match="n_betas must be >= 2"):
        ais_log_partition(rbm, 10, 1)
    with pytest.raises(ValueError, match="give either n_betas or betas"):
        ais_log_partition(rbm, 10, 100, betas=[0.0, 1.0])
    with pytest.raises(ValueError, match=r"betas must run from 0 to 1, got 0\.1 \.\.\. 1\.0"):
        ais_log_partition(rbm, 10, betas=[0.1, 1.0])
    with pytest.raises(ValueError, match=r"non-decreasing, got 0\.5 then 0\.25 at index 1"):
        ais_log_partition(rbm, 10, betas=[0.0, 0.5, 0.25, 1.0])
    with pytest.raises(
        ValueError, match=r"betas must be a 1-D ladder of at least 2 values, got shape \(1,\)"
    ):
        ais_log_partition(rbm, 10, betas=[1.0])
    with pytest.raises(ValueError, match=r"base must be one of \['uniform', 'data'\], got 'zero'"):
        ais_log_partition(rbm, 10, 10, base="zero")
    with pytest.raises(ValueError, match=r"base = 'data' needs data \(training rows"):
        ais_log_partition(rbm, 10, 10, base="data")
    with pytest.raises(ValueError, match="data is only used with base = 'data'"):
        ais_log_partition(rbm, 10, 10, data=torch.zeros(5, 4))
    with pytest.raises(
        ValueError, match=r"data must have 4 values per row \(n_visible\), got shape \(5, 3\)"
    ):
        ais_log_partition(rbm, 10, 10, base="data", data=torch.zeros(5, 3))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\], got values in \[0\.0, 2\.0\]"):
        ais_log_partition(rbm, 10, 10, base="data", data=torch.tensor([[0.0, 1.0, 2.0, 0.0]]))
    with pytest.raises(ValueError, match="data holds 1 non-finite values"):
        ais_log_partition(gauss, 10, 10, base="data", data=torch.tensor([[0.0, math.inf, 2.0, 0.0]]))
    with pytest.raises(ValueError, match=r"v must have shape \(batch, 4\), got \(3, 5\)"):
        rbm_log_likelihood(rbm, torch.zeros(3, 5), 1.0)
    with pytest.raises(ValueError, match="log_z must be finite, got nan"):
        rbm_log_likelihood(rbm, torch.zeros(3, 4), math.nan)
    with pytest.raises(TypeError, match=r"rbm must be an nrf\.energies\.RBM"):
        rbm_log_likelihood(object(), torch.zeros(3, 4), 1.0)  # type: ignore[arg-type]
