"""Parallel tempering and annealed Langevin: mode coverage on the 5 x 5 grid mixture.

The target is GaussianMixtureEnergy with grid25's centres (spacing 1) and standard
deviation (0.05): neighbouring modes are 20 standard deviations apart, so a Langevin chain
never leaves the mode it starts in. Every chain starts at the same corner centre; each
final sample is assigned to its nearest centre and the 25 counts (independent chains) are
tested against the uniform mode weights by Pearson's chi-square (24 degrees of freedom)
at the significance ALPHA = 1e-3: parallel tempering and annealed Langevin must pass,
plain Langevin must fail. Exactness checks use 4 Monte-Carlo standard errors.
"""

from __future__ import annotations

import io
import math
from typing import Any

import pytest
import torch
from scipy import stats

from nrf.data.synthetic import grid25
from nrf.energies import GaussianEnergy, GaussianMixtureEnergy
from nrf.registry import ConfigError
from nrf.samplers import (
    SAMPLERS,
    AnnealedLangevin,
    Langevin,
    ParallelTempering,
    TemperingState,
    annealing_temperature,
    run,
)
from nrf.samplers.tempering import geometric_ladder
from nrf.targets import BoltzmannTarget
from samplers_helpers import gaussian_moment_check, one_thread  # noqa: F401 (autouse fixture)

ALPHA = 1e-3
N_CHAINS = 400  # 16 expected per mode
GRID = grid25(per_mode=1)
CENTRES = GRID.centres.float()
GRID_TARGET = BoltzmannTarget(GaussianMixtureEnergy(CENTRES, GRID.std))
MEAN = torch.tensor([1.0, -2.0], dtype=torch.float64)
COV = torch.tensor([[1.0, 0.6], [0.6, 1.0]], dtype=torch.float64)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def mode_test(x: torch.Tensor) -> tuple[float, float, torch.Tensor]:
    """Chi-square of the nearest-centre counts against uniform weights: (statistic, p-value,
    counts); also checks that every sample sits on a mode (within 6 standard deviations)."""
    dist = torch.cdist(x.float(), CENTRES)
    nearest = dist.min(1)
    assert float(nearest.values.max()) < 6 * GRID.std, "a sample lies between the modes"
    counts = torch.bincount(nearest.indices, minlength=25)
    result = stats.chisquare(counts.numpy())
    return float(result.statistic), float(result.pvalue), counts


def _corner_start(n: int = N_CHAINS) -> torch.Tensor:
    return CENTRES[0].expand(n, 2).clone()


# --- mode coverage on the grid ---------------------------------------------------------------


def test_langevin_stays_in_its_starting_mode() -> None:
    sampler = Langevin(0.001)
    state, _ = run(sampler, GRID_TARGET, sampler.init(_corner_start()), 400, generator=_gen(0))
    stat, pvalue, counts = mode_test(state.x)
    assert pvalue < 1e-10, (stat, pvalue)
    assert int(counts[0]) == N_CHAINS, counts.tolist()


def test_parallel_tempering_reaches_every_mode_uniformly() -> None:
    sampler = ParallelTempering(0.002, n_temperatures=6, max_temperature=200.0)
    rates: list[torch.Tensor] = []
    moves: list[torch.Tensor] = []

    def record(i: int, state: Any, info: Any) -> None:
        rates.append(info.swap_rate)
        moves.append(info.move_accept_prob.mean(1))

    state, _ = run(
        sampler, GRID_TARGET, sampler.init(_corner_start()), 400, generator=_gen(1), callback=record
    )
    stat, pvalue, counts = mode_test(state.x)
    assert pvalue > ALPHA, (stat, pvalue, counts.tolist())
    swap_rate = torch.stack(rates).nanmean(0)
    assert bool((swap_rate > 0.2).all()), swap_rate.tolist()
    assert bool((torch.stack(moves).mean(0) > 0.5).all())
    # the hot replicas are spread too
    for k in range(1, 6):
        assert len(set(mode_test_indices(state.replica(k)[0]))) > 15


def mode_test_indices(x: torch.Tensor) -> list[int]:
    return torch.cdist(x.float(), CENTRES).argmin(1).tolist()


@pytest.mark.slow
def test_parallel_tempering_random_pairs_reach_every_mode_uniformly() -> None:
    sampler = ParallelTempering(0.002, n_temperatures=6, max_temperature=200.0, swap="random")
    state, _ = run(sampler, GRID_TARGET, sampler.init(_corner_start()), 1200, generator=_gen(2))
    stat, pvalue, counts = mode_test(state.x)
    assert pvalue > ALPHA, (stat, pvalue, counts.tolist())


def test_annealed_langevin_reaches_every_mode_uniformly() -> None:
    sampler = AnnealedLangevin(0.001, initial_temperature=200.0, n_anneal=300)
    temperatures: list[float] = []
    state, _ = run(
        sampler, GRID_TARGET, sampler.init(_corner_start()), 400, generator=_gen(3),
        callback=lambda i, s, info: temperatures.append(info.temperature),
    )  # fmt: skip
    stat, pvalue, counts = mode_test(state.x)
    assert pvalue > ALPHA, (stat, pvalue, counts.tolist())
    assert temperatures[0] == 200.0
    assert temperatures[299] > 1.0
    assert temperatures[300:] == [1.0] * 100


@pytest.mark.slow
def test_annealed_langevin_many_chains_reach_every_mode_uniformly() -> None:
    sampler = AnnealedLangevin(0.001, initial_temperature=200.0, n_anneal=1000)
    state, _ = run(sampler, GRID_TARGET, sampler.init(_corner_start(5000)), 1100, generator=_gen(4))
    stat, pvalue, counts = mode_test(state.x)
    assert pvalue > ALPHA, (stat, pvalue, counts.tolist())


# --- exactness ----------------------------------------------------------------------------------


def test_parallel_tempering_cold_replica_is_exact_on_a_gaussian() -> None:
    """The beta = 1 replica samples the target: mean and covariance of a correlated
    Gaussian within 4 standard errors (a wrong sign in the exchange ratio pulls high-energy
    states into the cold replica and inflates its covariance)."""
    target = BoltzmannTarget(GaussianEnergy(MEAN, COV))
    sampler = ParallelTempering(0.3, n_temperatures=4, max_temperature=20.0, scale_step_size=False)
    state = sampler.init(torch.zeros(2000, 2, dtype=torch.float64))
    state, _ = run(sampler, target, state, 150, generator=_gen(5))
    gaussian_moment_check(state.x, MEAN, COV)
    # the hot replica follows p^(1/20): covariance 20 COV
    gaussian_moment_check(state.replica(3)[0], MEAN, 20.0 * COV)


def test_annealed_mala_is_exact_after_the_annealing() -> None:
    target = BoltzmannTarget(GaussianEnergy(MEAN, COV))
    sampler = AnnealedLangevin(0.2, initial_temperature=50.0, n_anneal=50, mh=True)
    state, _ = run(
        sampler, target, sampler.init(torch.zeros(2000, 2, dtype=torch.float64)), 200, generator=_gen(6)
    )
    gaussian_moment_check(state.x, MEAN, COV)


def test_swap_acceptance_matches_the_exchange_ratio() -> None:
    """One transition with a zero step: the only moves are exchanges, accepted with
    probability min(1, exp((beta_k - beta_k+1) (E_k - E_k+1)))."""
    energy = GaussianEnergy(torch.zeros(1, dtype=torch.float64), torch.eye(1, dtype=torch.float64))
    target = BoltzmannTarget(energy)
    sampler = ParallelTempering(1e-12, n_temperatures=3, max_temperature=4.0)
    x = torch.linspace(-2, 2, 7, dtype=torch.float64)[:, None]
    state = sampler.init(x)
    state.replicas = (torch.stack([0.5 * x, torch.zeros_like(x)]),)
    new, info = sampler.step(target, state, _gen(7))
    assert info.swap_attempted is not None
    assert info.swap_accept_prob is not None
    assert info.swap_attempted[0].all()  # step 0: the even pair (0, 1)
    assert not info.swap_attempted[1].any()
    betas = [1.0, 0.5, 0.25]
    e0, e1 = 0.5 * x[:, 0] ** 2, 0.5 * (0.5 * x[:, 0]) ** 2
    expected = ((betas[0] - betas[1]) * (e0 - e1)).exp().clamp(max=1.0)
    torch.testing.assert_close(info.swap_accept_prob[0], expected, rtol=0, atol=1e-5)
    _, info = sampler.step(target, new, _gen(8))
    assert info.swap_attempted is not None
    assert info.swap_attempted[1].all()  # step 1: the odd pair (1, 2)
    assert not info.swap_attempted[0].any()


# --- schedules, checkpoints, configs ------------------------------------------------------------


def test_annealing_schedule_is_geometric() -> None:
    temps = [annealing_temperature(t, 64.0, 6) for t in range(9)]
    exact = 64.0 ** (1 - torch.arange(6, dtype=torch.float64) / 6)
    torch.testing.assert_close(torch.tensor(temps[:6], dtype=torch.float64), exact, rtol=1e-12, atol=0)
    assert temps[6:] == [1.0, 1.0, 1.0]
    assert [annealing_temperature(t, 64.0, 0) for t in range(3)] == [1.0, 1.0, 1.0]
    ladder = geometric_ladder(5, 16.0)
    assert ladder == (1.0, 2.0, 4.0, 8.0, 16.0)
    assert ParallelTempering(0.1, 5, 16.0).temperatures == ladder


def test_parallel_tempering_state_dict_round_trip_continues_identically() -> None:
    sampler = ParallelTempering(0.002, n_temperatures=5, max_temperature=50.0, swap="random")
    g = _gen(9)
    state, _ = run(sampler, GRID_TARGET, sampler.init(_corner_start(64)), 9, generator=g)
    saved = state.state_dict()
    assert saved["replicas.0"].shape == (4, 64, 2)
    assert "log_probs" not in saved
    assert "grads.0" not in saved
    buffer = io.BytesIO()
    torch.save({"chains": saved, "rng": g.get_state()}, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer)
    expected, _ = run(sampler, GRID_TARGET, state, 6, generator=g)
    restored = TemperingState.from_state_dict(loaded["chains"])
    assert isinstance(restored, TemperingState)
    assert restored.log_probs is None
    g2 = torch.Generator()
    g2.set_state(loaded["rng"])
    got, _ = run(sampler, GRID_TARGET, restored, 6, generator=g2)
    for a, b in zip(got.all_replicas, expected.all_replicas, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert got.step == 15


def test_annealed_mala_state_dict_round_trip_continues_identically() -> None:
    sampler = AnnealedLangevin(0.001, initial_temperature=50.0, n_anneal=10, mh=True)
    g = _gen(10)
    state, _ = run(sampler, GRID_TARGET, sampler.init(_corner_start(64)), 6, generator=g)
    saved, rng = state.state_dict(), g.get_state()
    expected, _ = run(sampler, GRID_TARGET, state, 8, generator=g)
    g2 = torch.Generator()
    g2.set_state(rng)
    got, _ = run(sampler, GRID_TARGET, type(state).from_state_dict(saved), 8, generator=g2)
    torch.testing.assert_close(got.x, expected.x, rtol=0, atol=0)
    assert got.step == 14


def test_specs_and_argument_errors() -> None:
    pt = SAMPLERS.build({"name": "pt", "step_size": 0.01, "n_temperatures": 4, "max_temperature": 30})
    assert pt == ParallelTempering(0.01, 4, 30.0)
    assert pt.to_config()["name"] == "parallel-tempering"
    annealed = SAMPLERS.build(
        {"name": "annealed-langevin", "step_size": {"name": "polynomial", "a": 1, "b": 2, "c": 1}}
    )
    assert isinstance(annealed, AnnealedLangevin)
    cases = [
        (
            {"name": "pt", "step_size": 0.1, "n_temperatures": 1},
            r"s\.n_temperatures: n_temperatures must be an int >= 2",
        ),
        (
            {"name": "pt", "step_size": 0.1, "max_temperature": 1.0},
            r"s\.max_temperature: max_temperature must be > 1",
        ),
        (
            {"name": "pt", "step_size": 0.1, "swap": "all"},
            r"s\.swap: swap must be one of \['alternating', 'random'\]",
        ),
        ({"name": "pt"}, r"s\.step_size: required by parallel-tempering"),
        (
            {"name": "annealed-langevin", "step_size": 0.1, "initial_temperature": 0.5},
            r"s\.initial_temperature: initial_temperature must be >= 1, got 0\.5",
        ),
        (
            {"name": "annealed-langevin", "step_size": 0.1, "n_anneal": -1},
            r"s\.n_anneal: n_anneal must be an int >= 0",
        ),
        ({"name": "annealed-langevin", "step_size": -0.1}, r"s\.step_size"),
    ]
    for spec, message in cases:
        with pytest.raises(ConfigError, match=message):
            SAMPLERS.build(spec, key="s")


def test_parallel_tempering_refuses_foreign_states_and_ladders() -> None:
    sampler = ParallelTempering(0.01, n_temperatures=3, max_temperature=10.0)
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="ParallelTempering needs a TemperingState"):
        sampler.step(GRID_TARGET, Langevin(0.1).init(x))
    other = ParallelTempering(0.01, n_temperatures=5, max_temperature=10.0).init(x)
    with pytest.raises(
        ValueError, match=r"shape \(2, batch, \.\.\.\) per position tensor for n_temperatures = 3"
    ):
        sampler.step(GRID_TARGET, other)
    assert math.isnan(float(sampler.step(GRID_TARGET, sampler.init(x), _gen(0))[1].swap_rate[1]))
