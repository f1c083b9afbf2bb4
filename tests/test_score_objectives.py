"""Denoising and sliced score matching, NCE and inclusive-NRF's persistent chains: closed-form
minimizers on a Gaussian family, options, errors, and saving."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nrf.data import Batch
from nrf.energies import Energy
from nrf.objectives import OBJECTIVES, DenoisingScoreMatching, NoiseContrastiveEstimation, SlicedScoreMatching
from nrf.samplers import Langevin
from nrf.training.loop import Loop

MEAN = torch.tensor([1.0, -2.0])
COV = torch.tensor([[2.0, 0.6], [0.6, 0.5]])


class QuadraticEnergy(Energy):
    """E(x) = 1/2 (x - m)^T A^T A (x - m): the Gaussian family (precision A^T A)."""

    rows_independent = True

    def __init__(self) -> None:
        super().__init__()
        self.event_shape = (2,)
        self.m = nn.Parameter(torch.zeros(2))
        self.a = nn.Parameter(torch.eye(2))

    def precision(self) -> torch.Tensor:
        return (self.a.T @ self.a).detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x - self.m) @ self.a.T
        return 0.5 * z.pow(2).sum(1)


def gaussian_rows(n: int = 20000, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return MEAN + torch.randn(n, 2, generator=g) @ torch.linalg.cholesky(COV).T


def fit(objective: nn.Module, rows: torch.Tensor, steps: int = 1500, lr: float = 0.03) -> None:
    loop = Loop(
        objective, Batch(rows), {"energy": {"name": "adam", "lr": lr}}, batch_size=2000, steps=steps,
        generator=torch.Generator().manual_seed(1), data_generator=torch.Generator().manual_seed(2),
        lr_schedule="cosine",
    )  # fmt: skip
    loop.initialize(torch.arange(2000))
    loop.run()


def sample_moments(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return rows.mean(0), torch.cov(rows.T)


def test_sliced_score_matching_recovers_the_sample_moments() -> None:
    """Score matching's minimizer among quadratic energies is exactly the data's sample mean and
    inverse sample covariance; the stochastic fit lands within its gradient noise of them."""
    rows = gaussian_rows()
    for variance_reduction in (True, False):
        energy = QuadraticEnergy()
        fit(SlicedScoreMatching(energy, n_projections=2, variance_reduction=variance_reduction), rows)
        mean, cov = sample_moments(rows)
        assert torch.allclose(energy.m.detach(), mean, atol=0.05)
        assert torch.allclose(torch.linalg.inv(energy.precision()), cov, atol=0.08)


def test_sliced_score_matching_rademacher_projections() -> None:
    rows = gaussian_rows()
    energy = QuadraticEnergy()
    fit(SlicedScoreMatching(energy, projection="rademacher"), rows)
    assert torch.allclose(torch.linalg.inv(energy.precision()), torch.cov(rows.T), atol=0.1)


@pytest.mark.parametrize("sigmas", [(0.5,), (0.3, 0.6, 1.0)])
def test_denoising_score_matching_minimizer(sigmas: tuple[float, ...]) -> None:
    """One level: precision (Sigma + sigma^2 I)^-1, i.e. the covariance plus the noise's;
    several: the closed form of gaussian_precision; the mean is the data's in both."""
    rows = gaussian_rows(40000)
    energy = QuadraticEnergy()
    objective = DenoisingScoreMatching(energy, sigmas=sigmas)
    fit(objective, rows, steps=2500)
    mean, cov = sample_moments(rows)
    assert torch.allclose(energy.m.detach(), mean, atol=0.06)
    expected = DenoisingScoreMatching.gaussian_precision(cov, sigmas, min(sigmas))
    got = energy.precision()
    assert torch.allclose(torch.linalg.inv(got), torch.linalg.inv(expected), atol=0.12), (got, expected)
    if len(sigmas) == 1:  # the covariance itself: the learned one less the noise's
        assert torch.allclose(torch.linalg.inv(got) - sigmas[0] ** 2 * torch.eye(2), cov, atol=0.12)


@pytest.mark.parametrize("noise", ["gaussian", "diagonal", "custom"])
def test_nce_recovers_mean_covariance_and_normalizer(noise: str) -> None:
    rows = gaussian_rows()
    energy = QuadraticEnergy()
    q = (
        torch.distributions.MultivariateNormal(torch.zeros(2), 4.0 * torch.eye(2))
        if noise == "custom"
        else noise
    )
    objective = NoiseContrastiveEstimation(energy, noise=q, noise_ratio=4)
    fit(objective, rows, steps=2000, lr=0.05)
    mean, cov = sample_moments(rows)
    learned_cov = torch.linalg.inv(energy.precision())
    assert torch.allclose(energy.m.detach(), mean, atol=0.08)
    assert torch.allclose(learned_cov, cov, atol=0.15)
    log_z = 0.5 * 2 * math.log(2 * math.pi) + 0.5 * float(torch.logdet(learned_cov))
    assert float(objective.log_normalizer.detach()) == pytest.approx(log_z, abs=0.1)


def test_nce_noise_is_fitted_to_the_data_and_saved() -> None:
    rows = gaussian_rows(5000)
    objective = NoiseContrastiveEstimation(QuadraticEnergy(), noise_shrinkage=0.0)
    objective.initialize(rows)
    q = objective.noise_distribution()
    assert torch.allclose(q.mean, rows.mean(0), atol=1e-5)
    assert torch.allclose(q.covariance_matrix, torch.cov(rows.T), atol=1e-4)
    fresh = NoiseContrastiveEstimation(QuadraticEnergy(), noise_shrinkage=0.0)
    fresh.load_state_dict(objective.state_dict())  # buffers sized at initialize load into a fresh model
    assert torch.equal(fresh.noise_scale_tril, objective.noise_scale_tril)


def test_objectives_from_config_and_their_options() -> None:
    for spec in ({"name": "dsm", "sigmas": [0.1, 0.2]}, {"name": "ssm", "n_projections": 3},
                 {"name": "nce", "noise": "diagonal", "noise_ratio": 2}):  # fmt: skip
        objective = OBJECTIVES.build(spec, energy=QuadraticEnergy(), sampler=None)
        config = objective.to_config()
        assert {k: v for k, v in config.items() if k in spec} == spec
        assert OBJECTIVES.build(config, energy=QuadraticEnergy(), sampler=None).to_config() == config


def test_bad_options_are_named() -> None:
    with pytest.raises(ValueError, match="sigmas"):
        DenoisingScoreMatching(QuadraticEnergy(), sigmas=[])
    with pytest.raises(ValueError, match="sigmas"):
        DenoisingScoreMatching(QuadraticEnergy(), sigmas=[0.1, -1.0])
    with pytest.raises(ValueError, match="projection"):
        SlicedScoreMatching(QuadraticEnergy(), projection="uniform")
    with pytest.raises(ValueError, match="noise must be"):
        NoiseContrastiveEstimation(QuadraticEnergy(), noise="laplace")
    with pytest.raises(ValueError, match="noise_ratio"):
        NoiseContrastiveEstimation(QuadraticEnergy(), noise_ratio=0)


def test_sampling_needs_a_sampler_and_starts_at_the_data_moments() -> None:
    rows = gaussian_rows(4000)
    objective = DenoisingScoreMatching(QuadraticEnergy(), sigmas=0.3)
    objective.initialize(rows)
    with pytest.raises(TypeError, match="without a sampler"):
        objective.sample(4)
    fit(objective, rows, steps=300)
    objective.sampler = Langevin(step_size=0.05)
    objective.sample_steps = 300
    x = objective.sample(2000, torch.Generator().manual_seed(0))
    assert x.shape == (2000, 2)
    assert torch.allclose(x.mean(0), MEAN, atol=0.2)


def test_inclusive_persistent_chains_continue_from_the_buffer() -> None:
    from nrf.energies import paper_potential
    from nrf.generators import MLPGenerator

    rows = gaussian_rows(2000)
    energy = paper_potential("gmm", hidden=(16, 16), norm="none")
    generator = MLPGenerator(latent_dim=3, event_shape=(2,), hidden=(8,), sigma=0.0)
    objective = OBJECTIVES.build(
        {"name": "inclusive", "steps": 2, "revision": "x-only", "persistent": 64, "reinit_prob": 0.0},
        energy=energy, generator=generator, sampler=Langevin(step_size=0.01),
    )  # fmt: skip
    loop = Loop(
        objective, Batch(rows), {g: {"name": "adam", "lr": 1e-3} for g in ("energy", "generator")},
        batch_size=32, steps=3, generator=torch.Generator().manual_seed(1),
        data_generator=torch.Generator().manual_seed(2),
    )  # fmt: skip
    loop.run()
    assert len(objective.buffer) == 64  # 3 x 32 pushed into 64 places
    stored = objective.buffer.contents()
    x0, _ = objective.chain_starts(500, torch.Generator().manual_seed(3))
    # with reinit_prob 0 every start is a stored revised sample
    flat = stored[:, :2]
    assert float((x0[:, None, :] - flat[None]).abs().amax(-1).min(1).values.max()) == 0.0
    state = objective.extra_state()
    fresh = OBJECTIVES.build(
        objective.to_config(), energy=energy, generator=generator, sampler=Langevin(step_size=0.01)
    )
    fresh.load_extra_state(state)
    assert torch.equal(fresh.buffer.contents(), stored)
    with pytest.raises(ValueError, match="reinit_prob"):
        OBJECTIVES.build({"name": "inclusive", "persistent": 8, "reinit_prob": 2.0}, energy=energy,
                         generator=generator, sampler=Langevin(step_size=0.01))  # fmt: skip
