"""Gibbs samplers of RBMs: block Gibbs and temperature driven sampling (BEAM Algorithms 1-2).

Statistical checks compare the final states of many independent chains with exact
distributions: p(v) = exp(-F(v)) / Z enumerated over all visible states (Bernoulli), the
hidden marginal p(h) over all hidden states (Gaussian-Bernoulli), and the Gamma laws of
the inverse temperatures. Tolerances are 4 Monte-Carlo standard errors (computed, not
guessed) and chi-square / Kolmogorov-Smirnov tests at the significance ALPHA = 1e-3.
"""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Callable

import pytest
import torch
from scipy import special, stats

from nrf.energies import RBM, GaussianEnergy
from nrf.registry import ConfigError
from nrf.samplers import (
    SAMPLERS,
    BlockGibbs,
    DrivenGibbsState,
    GibbsState,
    Langevin,
    TemperatureDrivenGibbs,
    autoregressive_gamma_step,
    run,
    sample_gamma,
)
from nrf.targets import BoltzmannTarget, RBMTarget
from samplers_helpers import one_thread  # noqa: F401 (autouse fixture)

F64 = torch.float64
ALPHA = 1e-3
Z = 4.0


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _states(n: int) -> torch.Tensor:
    """All 2^n binary vectors, shape ``(2^n, n)``, in lexicographic order."""
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=F64)


def _codes(x: torch.Tensor) -> torch.Tensor:
    """Index of each binary row in the order of :func:`_states`."""
    n = x.shape[1]
    weights = 2 ** torch.arange(n - 1, -1, -1)
    return (x.round().long() * weights).sum(1)


def _rbm(visible: str, n_visible: int, n_hidden: int, seed: int = 0, weight_std: float = 1.0) -> RBM:
    g = _gen(seed)
    rbm = RBM(n_visible, n_hidden, visible, weight_std=weight_std, generator=g).double()
    with torch.no_grad():
        rbm.visible_bias.copy_(0.5 * torch.randn(n_visible, generator=g, dtype=F64))
        rbm.hidden_bias.copy_(0.5 * torch.randn(n_hidden, generator=g, dtype=F64))
        if visible == "gaussian":
            rbm.log_var.copy_(0.3 * torch.randn(n_visible, generator=g, dtype=F64))
    return rbm


def chi_square(counts: torch.Tensor, probs: torch.Tensor, min_expected: float = 5.0) -> tuple[float, float]:
    """Pearson's chi-square of ``counts`` against ``probs`` (bins expected below
    ``min_expected`` pooled into one); returns (statistic, p-value)."""
    n = float(counts.sum())
    expected = n * probs.double()
    observed = counts.double()
    small = expected < min_expected
    if bool(small.any()):
        expected = torch.cat([expected[~small], expected[small].sum().view(1)])
        observed = torch.cat([observed[~small], observed[small].sum().view(1)])
    stat = float(((observed - expected) ** 2 / expected).sum())
    return stat, float(stats.chi2.sf(stat, observed.numel() - 1))


def gibbs_kernel(rbm: RBM, beta: float = 1.0, beta_visible: float | None = None) -> torch.Tensor:
    """The exact transition matrix T[v, v'] = sum_h p(h | v) p(v' | h) of a Bernoulli RBM,
    the conditionals at ``beta`` (p(v | h) at ``beta_visible`` when given)."""
    vs, hs = _states(rbm.n_visible), _states(rbm.n_hidden)
    with torch.no_grad():
        ph = rbm.hidden_probs(vs, beta)  # (V, n_hidden)
        p_h_given_v = (hs[None] * ph[:, None] + (1 - hs[None]) * (1 - ph[:, None])).prod(-1)  # (V, H)
        pv = rbm.visible_mean(hs, beta if beta_visible is None else beta_visible)  # (H, n_visible)
        p_v_given_h = (vs[None] * pv[:, None] + (1 - vs[None]) * (1 - pv[:, None])).prod(-1)  # (H, V)
    return p_h_given_v @ p_v_given_h


def fixed_point(kernel: torch.Tensor) -> torch.Tensor:
    """The stationary distribution pi = pi T of a transition matrix."""
    evals, evecs = torch.linalg.eig(kernel.T)
    pi = evecs[:, evals.real.argmax()].real
    return pi / pi.sum()


def exact_visible(rbm: RBM) -> torch.Tensor:
    with torch.no_grad():
        return torch.softmax(-rbm(_states(rbm.n_visible)), 0)


# --- the Gamma sampler and the autoregressive Gamma process ----------------------------


@pytest.mark.parametrize("shape", [0.3, 0.8, 1.0, 2.5, 20.0])
def test_gamma_sampler_matches_gamma_law(shape: float) -> None:
    scale, n = 1.5, 100_000
    x = sample_gamma(torch.full((n,), shape, dtype=F64), scale, _gen(1))
    mean, var = shape * scale, shape * scale**2
    # se of the sample variance: sqrt((mu4 - sigma^4) / n), mu4 = sigma^4 (3 + 6 / k) for Gamma(k)
    se_mean, se_var = math.sqrt(var / n), var * math.sqrt((2 + 6 / shape) / n)
    assert abs(float(x.mean()) - mean) < Z * se_mean, (float(x.mean()), mean, se_mean)
    assert abs(float(x.var()) - var) < Z * se_var, (float(x.var()), var, se_var)
    assert stats.kstest(x.numpy(), stats.gamma(shape, scale=scale).cdf).pvalue > ALPHA
    assert bool((x > 0).all())


def test_gamma_sampler_per_element_shapes_and_reproducibility() -> None:
    shape = torch.tensor([[0.5, 3.0], [10.0, 1.0]], dtype=F64).repeat(20_000, 1)
    x = sample_gamma(shape, 2.0, _gen(2))
    assert x.shape == shape.shape
    torch.testing.assert_close(x, sample_gamma(shape, 2.0, _gen(2)), rtol=0, atol=0)
    means = x.view(20_000, 2, 2).mean(0)
    se = (2.0 * shape[:2].sqrt()) / math.sqrt(20_000)
    assert bool(((means - 2.0 * shape[:2]).abs() < Z * se).all()), means


def test_gamma_sampler_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="shape must hold finite numbers > 0"):
        sample_gamma(torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="scale must be a finite number > 0"):
        sample_gamma(torch.tensor([1.0]), -1.0)
    with pytest.raises(TypeError, match="floating-point tensor"):
        sample_gamma(torch.tensor([1, 2]))


@pytest.mark.parametrize(("phi", "variance"), [(0.9, 0.81), (0.5, 0.25), (0.0, 0.5), (0.95, 0.04)])
def test_autoregressive_gamma_process_stationary_law(phi: float, variance: float) -> None:
    """From beta = 1, after a burn-in of many 1 / (1 - phi) steps: mean 1, variance Var,
    lag-1 autocovariance phi Var (each within 4 empirical standard errors over independent
    chains) and the Gamma(1 / Var, scale Var) law (KS)."""
    n, burn = 20_000, 150
    g = _gen(3)
    beta = torch.ones(n, dtype=F64)
    for _ in range(burn):
        beta = autoregressive_gamma_step(beta, phi, variance, g)
    nxt = autoregressive_gamma_step(beta, phi, variance, g)
    d0, d1 = beta - 1.0, nxt - 1.0
    root_n = math.sqrt(n)
    assert abs(float(d0.mean())) < Z * float(beta.std()) / root_n
    sq = d0 * d0
    assert abs(float(sq.mean()) - variance) < Z * float(sq.std()) / root_n, (float(sq.mean()), variance)
    cross = d0 * d1
    assert abs(float(cross.mean()) - phi * variance) < Z * float(cross.std()) / root_n, (
        float(cross.mean()) / variance,
        phi,
    )
    law = stats.gamma(1.0 / variance, scale=variance)
    assert stats.kstest(beta.numpy(), law.cdf).pvalue > ALPHA
    assert stats.kstest(nxt.numpy(), law.cdf).pvalue > ALPHA


def test_autoregressive_gamma_step_refuses_bad_arguments() -> None:
    beta = torch.ones(3)
    with pytest.raises(ValueError, match=r"phi \(the autocorrelation\) must be in \[0, 1\)"):
        autoregressive_gamma_step(beta, 1.0, 0.5)
    with pytest.raises(ValueError, match="variance must be a finite number >= 0"):
        autoregressive_gamma_step(beta, 0.5, -0.1)
    with pytest.raises(ValueError, match="beta must hold finite numbers >= 0"):
        autoregressive_gamma_step(-beta, 0.5, 0.5)
    torch.testing.assert_close(autoregressive_gamma_step(beta * 3, 0.5, 0.0), torch.ones(3))


# --- block Gibbs against enumeration ------------------------------------------------------


def test_block_gibbs_matches_enumerated_bernoulli_rbm() -> None:
    rbm = _rbm("bernoulli", 4, 3)
    target, p = RBMTarget(rbm), exact_visible(rbm)
    n_chains, n_steps = 20_000, 40
    start = torch.zeros(1, 16, dtype=F64)
    start[0, 0] = 1.0
    # the burn-in is enough: the exact distribution after n_steps from v = 0 is within 1e-4 of p
    after = start @ torch.linalg.matrix_power(gibbs_kernel(rbm), n_steps)
    assert float((after[0] - p).abs().sum()) < 1e-4
    # p is the kernel's fixed point (the kernel is the one the sampler runs)
    torch.testing.assert_close(p @ gibbs_kernel(rbm), p)
    sampler = BlockGibbs()
    state, _ = run(
        sampler, target, sampler.init(torch.zeros(n_chains, 4, dtype=F64)), n_steps, generator=_gen(4)
    )
    counts = torch.bincount(_codes(state.x), minlength=16)
    stat, pvalue = chi_square(counts, p)
    assert pvalue > ALPHA, (stat, pvalue, counts.tolist(), (p * n_chains).tolist())
    # the test has power: the uniform start, and the model at beta = 1/2, are both refused
    assert chi_square(counts, torch.full((16,), 1 / 16, dtype=F64))[1] < 1e-10
    tempered = torch.softmax(-0.5 * rbm(_states(4)).detach(), 0)
    assert chi_square(counts, tempered)[1] < 1e-10


def test_block_gibbs_gaussian_bernoulli_hidden_marginal_and_visible_mean() -> None:
    """The hidden sample of the last sweep follows p(h) ∝ exp(-F_h(h)) (the visible units
    integrated out: RBM._log_marginal_hidden), and E[v] = sum_h p(h) (a + W h)."""
    rbm = _rbm("gaussian", 3, 4, seed=1)
    target = RBMTarget(rbm)
    hs = _states(4)
    with torch.no_grad():
        p_h = torch.softmax(rbm._log_marginal_hidden(hs), 0)
        means = rbm.visible_input(hs)  # (16, 3)
    n_chains = 20_000
    sampler = BlockGibbs()
    state, _ = run(sampler, target, sampler.init(torch.zeros(n_chains, 3, dtype=F64)), 40, generator=_gen(5))
    assert state.h is not None
    counts = torch.bincount(_codes(state.h), minlength=16)
    stat, pvalue = chi_square(counts, p_h)
    assert pvalue > ALPHA, (stat, pvalue, counts.tolist(), (p_h * n_chains).tolist())
    assert chi_square(counts, torch.full((16,), 1 / 16, dtype=F64))[1] < 1e-10
    mean = p_h @ means
    var = rbm.variance.detach() + p_h @ means.pow(2) - mean.pow(2)
    se = (var / n_chains).sqrt()
    assert bool(((state.x.mean(0) - mean).abs() < Z * se).all()), (state.x.mean(0), mean, se)


def test_mean_field_visible_reports_the_mean_and_keeps_the_chain() -> None:
    rbm = _rbm("bernoulli", 4, 3)
    target, v0 = RBMTarget(rbm), torch.zeros(50, 4, dtype=F64)
    plain, _ = run(BlockGibbs(), target, BlockGibbs().init(v0), 5, generator=_gen(6))
    display = BlockGibbs(mean_field_visible=True)
    g = _gen(6)
    state = display.init(v0)
    for _ in range(5):
        state, info = display.step(target, state, g)
    torch.testing.assert_close(state.x, plain.x, rtol=0, atol=0)  # computing the mean draws nothing
    assert state.visible_mean is not None
    assert info.visible_mean is not None
    torch.testing.assert_close(state.visible_mean[0], rbm.visible_mean(state.h).detach())
    torch.testing.assert_close(info.visible_mean, state.visible_mean[0])
    assert plain.visible_mean is None
    assert "visible_mean.0" not in state.state_dict()  # a cache, not state


# --- temperature driven sampling ------------------------------------------------------------


def test_tds_with_zero_beta_std_is_block_gibbs_draw_for_draw() -> None:
    for visible in ("bernoulli", "gaussian"):
        target = RBMTarget(_rbm(visible, 4, 3))
        v0 = torch.zeros(64, 4, dtype=F64)
        a, _ = run(BlockGibbs(), target, BlockGibbs().init(v0), 12, generator=_gen(7))
        tds = TemperatureDrivenGibbs(beta_std=0.0, autocorrelation=0.9)
        b, _ = run(tds, target, tds.init(v0), 12, generator=_gen(7))
        torch.testing.assert_close(b.x, a.x, rtol=0, atol=0)
        torch.testing.assert_close(b.h, a.h, rtol=0, atol=0)
        assert b.inverse_temperature is not None
        assert bool((b.inverse_temperature == 1).all())


def test_tds_inverse_temperatures_follow_the_gamma_law() -> None:
    target = RBMTarget(_rbm("bernoulli", 4, 3))
    std, phi, n = 0.7, 0.8, 20_000
    tds = TemperatureDrivenGibbs(beta_std=std, autocorrelation=phi)
    betas: list[torch.Tensor] = []
    state, _ = run(
        tds, target, tds.init(torch.zeros(n, 4, dtype=F64)), 60, generator=_gen(8),
        callback=lambda i, s, info: betas.append(info.beta),
    )  # fmt: skip
    beta = state.inverse_temperature
    assert beta is not None
    torch.testing.assert_close(betas[-1], beta, rtol=0, atol=0)
    var = std**2
    # the first sweep's betas already follow the law: they start from it (Algorithm 2)
    for b in (betas[0], beta):
        assert abs(float(b.mean()) - 1.0) < Z * math.sqrt(var / n)
        assert abs(float(b.var()) - var) < Z * var * math.sqrt((2 + 6 * var) / n)
        assert stats.kstest(b.numpy(), stats.gamma(1 / var, scale=var).cdf).pvalue > ALPHA
    d0, d1 = betas[-2] - 1, betas[-1] - 1
    cross = d0 * d1
    assert abs(float(cross.mean()) - phi * var) < Z * float(cross.std()) / math.sqrt(n)


def test_tds_sweeps_use_each_chains_inverse_temperature() -> None:
    """With autocorrelation 0 every sweep draws a fresh beta ~ Gamma(1 / Var, scale Var), so v
    is a Markov chain with the kernel E_beta[T_beta] (T_beta: the exact Gibbs kernel at beta,
    the expectation by Gauss-Laguerre quadrature). The TDS chains must match its fixed point
    and be refused by the fixed points of the model (beta = 1) and of sweeps that temper one
    conditional only."""
    rbm = _rbm("bernoulli", 4, 3, weight_std=1.5)
    std = 0.9
    var = std**2
    nu = 1 / var
    nodes, weights = special.roots_genlaguerre(60, nu - 1)
    betas = [float(var * x) for x in nodes]
    probs = [float(w) / math.gamma(nu) for w in weights]  # sum_i probs_i f(betas_i) = E f(beta)

    def mixed(kernel_at: Callable[[float], torch.Tensor]) -> torch.Tensor:
        return torch.stack([w * kernel_at(b) for b, w in zip(betas, probs, strict=True)]).sum(0)

    kernel = mixed(lambda b: gibbs_kernel(rbm, b))
    torch.testing.assert_close(kernel.sum(1), torch.ones(16, dtype=F64))
    driven = fixed_point(kernel)
    n_chains, n_steps = 40_000, 40
    start = torch.zeros(1, 16, dtype=F64)
    start[0, 0] = 1.0
    assert float(((start @ torch.linalg.matrix_power(kernel, n_steps))[0] - driven).abs().sum()) < 1e-4
    tds = TemperatureDrivenGibbs(beta_std=std, autocorrelation=0.0)
    v0 = torch.zeros(n_chains, 4, dtype=F64)
    state, _ = run(tds, RBMTarget(rbm), tds.init(v0), n_steps, generator=_gen(9))
    counts = torch.bincount(_codes(state.x), minlength=16)
    stat, pvalue = chi_square(counts, driven)
    assert pvalue > ALPHA, (stat, pvalue, counts.tolist(), (driven * n_chains).tolist())
    alternatives = {
        "the model": exact_visible(rbm),
        "p(h | v) tempered only": fixed_point(mixed(lambda b: gibbs_kernel(rbm, b, 1.0))),
        "p(v | h) tempered only": fixed_point(mixed(lambda b: gibbs_kernel(rbm, 1.0, b))),
    }
    for name, other in alternatives.items():
        assert chi_square(counts, other)[1] < ALPHA, name


# --- checkpoints, configs and errors ---------------------------------------------------------


@pytest.mark.parametrize(
    "sampler",
    [BlockGibbs(), TemperatureDrivenGibbs(0.9, 0.9)],
    ids=["gibbs", "tds"],
)
@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_state_dict_round_trip_continues_identically(sampler: BlockGibbs, visible: str) -> None:
    target = RBMTarget(_rbm(visible, 4, 3))
    g = _gen(10)
    state, _ = run(sampler, target, sampler.init(torch.zeros(32, 4, dtype=F64)), 7, generator=g)
    saved = state.state_dict()
    assert "hidden.0" in saved
    assert ("beta.0" in saved) == isinstance(sampler, TemperatureDrivenGibbs)
    buffer = io.BytesIO()
    torch.save({"chains": saved, "rng": g.get_state()}, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer)
    expected, _ = run(sampler, target, state, 5, generator=g)

    restored = type(state).from_state_dict(loaded["chains"])
    assert type(restored) is type(state)
    assert restored.step == 7
    torch.testing.assert_close(restored.h, state.h, rtol=0, atol=0)
    g2 = torch.Generator()
    g2.set_state(loaded["rng"])
    got, _ = run(sampler, target, restored, 5, generator=g2)
    torch.testing.assert_close(got.x, expected.x, rtol=0, atol=0)
    torch.testing.assert_close(got.h, expected.h, rtol=0, atol=0)
    if isinstance(got, DrivenGibbsState):
        assert isinstance(expected, DrivenGibbsState)
        torch.testing.assert_close(got.inverse_temperature, expected.inverse_temperature, rtol=0, atol=0)
    assert got.step == expected.step == 12


def test_specs_by_name_and_alias() -> None:
    tds = SAMPLERS.build({"name": "tds", "beta_std": 0.9, "autocorrelation": 0.9})
    assert tds == TemperatureDrivenGibbs(0.9, 0.9)
    assert tds.to_config() == {
        "name": "driven-gibbs",
        "beta_std": 0.9,
        "autocorrelation": 0.9,
        "mean_field_visible": False,
    }
    assert SAMPLERS.build({"name": "block-gibbs"}) == BlockGibbs()
    assert SAMPLERS.build("gibbs").to_config() == {"name": "gibbs", "mean_field_visible": False}
    with pytest.raises(ConfigError, match=r"sampler\.beta_std: beta_std must be in \[0, 1\), got 1\.0"):
        SAMPLERS.build({"name": "tds", "beta_std": 1.0}, key="sampler")
    with pytest.raises(ConfigError, match=r"tds\.autocorrelation: autocorrelation must be in \[0, 1\)"):
        SAMPLERS.build({"name": "driven-gibbs", "autocorrelation": -0.1}, key="tds")
    with pytest.raises(ConfigError, match="mean_field_visible: expected bool"):
        SAMPLERS.build({"name": "gibbs", "mean_field_visible": 1})


def test_gibbs_refuses_other_targets_and_states() -> None:
    gaussian = BoltzmannTarget(GaussianEnergy(torch.zeros(4), torch.eye(4)))
    for sampler in (BlockGibbs(), TemperatureDrivenGibbs()):
        state = sampler.init(torch.zeros(3, 4))
        with pytest.raises(
            TypeError, match=r"the target must be an nrf\.targets\.RBMTarget, got BoltzmannTarget"
        ):
            sampler.step(gaussian, state)
    target = RBMTarget(RBM(4, 2))
    with pytest.raises(ValueError, match="TemperatureDrivenGibbs needs a DrivenGibbsState"):
        TemperatureDrivenGibbs().step(target, GibbsState(position=(torch.zeros(3, 4),)))
    with pytest.raises(ValueError, match=r"position \(v,\), got 2 tensors"):
        BlockGibbs().init((torch.zeros(3, 4), torch.zeros(3, 2)))
    with pytest.raises(TypeError, match=r"rbm must be an nrf\.energies\.RBM, got GaussianEnergy"):
        RBMTarget(GaussianEnergy(torch.zeros(4), torch.eye(4)))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="mean_field_visible must be a bool"):
        BlockGibbs(mean_field_visible="yes")  # type: ignore[arg-type]


def test_rbm_target_serves_gradient_samplers() -> None:
    """log p(v) = -F(v); MALA on a Gaussian-Bernoulli RBM reproduces E[v] = sum_h p(h) (a + W h)."""
    rbm = _rbm("gaussian", 3, 4, seed=1)
    target = RBMTarget(rbm)
    v = torch.randn(5, 3, generator=_gen(11), dtype=F64)
    torch.testing.assert_close(target.log_prob((v,)), -rbm(v))
    hs = _states(4)
    with torch.no_grad():
        p_h = torch.softmax(rbm._log_marginal_hidden(hs), 0)
        means = rbm.visible_input(hs)
    mean = p_h @ means
    var = rbm.variance.detach() + p_h @ means.pow(2) - mean.pow(2)
    n = 4000
    sampler = Langevin(0.2, mh=True)
    state, _ = run(sampler, target, sampler.init(torch.zeros(n, 3, dtype=F64)), 150, generator=_gen(12))
    se = (var / n).sqrt()
    assert bool(((state.x.mean(0) - mean).abs() < Z * se).all()), (state.x.mean(0), mean, se)
