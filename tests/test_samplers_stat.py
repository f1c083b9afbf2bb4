"""Statistical tests: each sampler against distributions with known moments.

Tolerances are 4 Monte-Carlo standard errors of the final states of independent chains.
Unadjusted samplers (Langevin, SGHMC) carry a discretization bias of order delta; the step
sizes here keep it well below one standard error (for Langevin on a Gaussian with
precision eigenvalue l the stationary variance is 1 / (l (1 - delta l / 2))).
"""

from __future__ import annotations

import pytest
import torch

from nrf.energies import GaussianEnergy, GaussianMixtureEnergy
from nrf.generators import MLPGenerator
from nrf.samplers import HMC, MPPI, SGHMC, CoopNet, Langevin, run
from nrf.targets import AugmentedTarget, BoltzmannTarget
from samplers_helpers import binomial_check, gaussian_moment_check, normal_cdf

F64 = torch.float64

MEAN = torch.tensor([1.0, -2.0], dtype=torch.float64)
COV = torch.tensor([[1.0, 0.6], [0.6, 1.0]], dtype=torch.float64)  # eigenvalues 0.4 and 1.6
N_CHAINS = 2000


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


SAMPLERS = {
    "langevin": (lambda: Langevin(0.02), 600),
    "mala": (lambda: Langevin(0.1, mh=True), 400),
    "sghmc": (lambda: SGHMC(0.01, beta=0.2), 600),
    "hmc": (lambda: HMC(0.3, n_leapfrog=6), 100),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_correlated_gaussian(name: str) -> None:
    make, steps = SAMPLERS[name]
    target = BoltzmannTarget(GaussianEnergy(MEAN, COV))
    sampler = make()
    state = sampler.init(torch.zeros(N_CHAINS, 2, dtype=torch.float64))
    state, _ = run(sampler, target, state, steps, generator=_gen(1))
    gaussian_moment_check(state.x, MEAN, COV)


MIX_MEANS = torch.tensor([[-1.0, 0.0], [1.2, 0.5]], dtype=torch.float64)
MIX_STD = 0.6
MIX_WEIGHTS = torch.tensor([0.3, 0.7], dtype=torch.float64)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_mixture_mode_weights(name: str) -> None:
    """Chains all start in the lighter mode; the mass left of x1 = 0 must match the exact
    mixture value sum_k w_k Phi(-mu_k1 / sigma)."""
    make, steps = SAMPLERS[name]
    target = BoltzmannTarget(GaussianMixtureEnergy(MIX_MEANS, MIX_STD, MIX_WEIGHTS))
    sampler = make()
    start = MIX_MEANS[0].expand(N_CHAINS, 2).clone()
    state, _ = run(sampler, target, sampler.init(start), steps * 2, generator=_gen(2))
    exact = sum(
        float(w) * normal_cdf(-float(m[0]) / MIX_STD) for w, m in zip(MIX_WEIGHTS, MIX_MEANS, strict=True)
    )
    binomial_check(state.x[:, 0] < 0, exact)


def test_mppi_is_mode_seeking() -> None:
    target = BoltzmannTarget(GaussianEnergy(MEAN, COV))
    sampler = MPPI(0.2, n_samples=8)
    state = sampler.init(torch.full((500, 2), 3.0, dtype=F64))
    state, _ = run(sampler, target, state, 300, generator=_gen(3))
    # Near the mode, and tighter than the target (MPPI is not an exact sampler).
    assert float((state.x.mean(0) - MEAN).norm()) < 0.1
    assert float(torch.cov(state.x.T).trace()) < float(COV.trace())


def _linear_gaussian_problem() -> tuple[GaussianEnergy, MLPGenerator, torch.Tensor, torch.Tensor]:
    """p(x) = N(m_p, S_p) over 2-D x; q(x, h) with h ~ N(0, I_2), x = A h + b + sigma eps.

    Returns the energy, the generator, and the exact mean and covariance of p(x) q(h | x)
    over z = (x, h).
    """
    energy = GaussianEnergy(
        torch.tensor([0.5, -0.5], dtype=F64), torch.tensor([[0.6, 0.2], [0.2, 0.4]], dtype=F64)
    )
    gen = MLPGenerator(2, 2, hidden=(), batch_norm=False, output_norm="none", sigma=0.7).double()
    with torch.no_grad():
        gen.net[0].weight.copy_(torch.tensor([[0.8, -0.3], [0.4, 0.9]]))
        gen.net[0].bias.copy_(torch.tensor([0.2, 0.1]))
    a, b, s2 = gen.net[0].weight.detach(), gen.net[0].bias.detach(), 0.7**2
    # q(h | x): Gaussian with precision I + A^T A / s2 and mean P^-1 A^T (x - b) / s2.
    prec_h = torch.eye(2, dtype=F64) + a.T @ a / s2
    cov_h = torch.linalg.inv(prec_h)
    k = cov_h @ a.T / s2  # E[h | x] = k (x - b)
    m_x, s_x = energy.mean, energy.covariance
    mean = torch.cat([m_x, k @ (m_x - b)])
    cov = torch.zeros(4, 4, dtype=F64)
    cov[:2, :2] = s_x
    cov[:2, 2:] = s_x @ k.T
    cov[2:, :2] = k @ s_x
    cov[2:, 2:] = cov_h + k @ s_x @ k.T
    return energy, gen, mean, cov


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sgld", "sghmc"])
def test_augmented_target_matches_exact_joint(kind: str) -> None:
    energy, gen, mean, cov = _linear_gaussian_problem()
    # 15 inner steps make h* (nearly) an exact draw from q(h* | x), so the estimator of
    # Proposition 2 is (nearly) unbiased; the one-step estimator of the paper is biased
    # (h* stays correlated with h), see test_one_inner_step_keeps_the_x_marginal.
    target = AugmentedTarget(energy, gen, inner_step_size=0.25, inner_steps=15)
    sampler = Langevin(0.02) if kind == "sgld" else SGHMC(0.01, beta=0.2)
    with torch.no_grad():
        x0, h0 = gen.sample(N_CHAINS, _gen(4))
    state, _ = run(sampler, target, sampler.init((x0, h0)), 500, generator=_gen(5))
    gaussian_moment_check(torch.cat(state.position, dim=1), mean, cov)


@pytest.mark.slow
def test_coopnet_keeps_the_x_marginal() -> None:
    """CoopNet's x-steps follow p(x) alone (not p(x | h)), so only its x-marginal is p(x);
    its joint is not p(x) q(h | x) (Inclusive-NRF Section IV)."""
    energy, gen, mean, cov = _linear_gaussian_problem()
    target = AugmentedTarget(energy, gen)
    sampler = CoopNet(0.02, n_x=20, n_h=20)
    with torch.no_grad():
        x0, h0 = gen.sample(N_CHAINS, _gen(6))
    state, _ = run(sampler, target, sampler.init((x0, h0)), 25, generator=_gen(7))
    gaussian_moment_check(state.x, mean[:2], cov[:2, :2])


@pytest.mark.slow
def test_one_inner_step_keeps_the_x_marginal() -> None:
    """With the paper's single inner step the x-marginal is still p(x)."""
    energy, gen, mean, cov = _linear_gaussian_problem()
    target = AugmentedTarget(energy, gen, inner_step_size=0.01)
    sampler = Langevin(0.02)
    with torch.no_grad():
        x0, h0 = gen.sample(N_CHAINS, _gen(8))
    state, _ = run(sampler, target, sampler.init((x0, h0)), 500, generator=_gen(9))
    gaussian_moment_check(state.x, mean[:2], cov[:2, :2])
