"""Exact, non-statistical properties of samplers and targets."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pytest
import torch

from nrf.energies import GaussianEnergy, MLPEnergy
from nrf.generators import MLPGenerator
from nrf.samplers import (
    HMC,
    MPPI,
    SGHMC,
    AnnealedLangevin,
    BlockGibbs,
    ChainState,
    Constant,
    CoopNet,
    Langevin,
    ParallelTempering,
    PolynomialDecay,
    ReplayBuffer,
    Sampler,
    SGHMCState,
    StepInfo,
    TemperatureDrivenGibbs,
    langevin_update,
    leapfrog,
    mppi_update,
    run,
    sghmc_update,
)
from nrf.targets import AugmentedTarget, BoltzmannTarget, MaskedTarget, ProductOfExperts, Target, tempered
from nrf.targets.base import Position


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class FlatTarget(Target):
    """log p = 0 everywhere: zero gradient."""

    def log_prob(self, position: Position) -> torch.Tensor:
        return position[0].flatten(1).sum(1) * 0.0


def _std_target() -> BoltzmannTarget:
    return BoltzmannTarget(GaussianEnergy(torch.zeros(3), torch.eye(3)))


# --- pure update functions -------------------------------------------------------------


def test_langevin_update_is_exact() -> None:
    z, g, eta = torch.randn(4, 3), torch.randn(4, 3), torch.randn(4, 3)
    torch.testing.assert_close(langevin_update(z, g, 0.1, eta, 0.3), z + 0.1 * g + 0.3 * eta)


def test_sghmc_update_is_exact() -> None:
    z, v, g, eta = (torch.randn(5, 2) for _ in range(4))
    z_new, v_new = sghmc_update(z, v, g, 0.05, 0.2, eta, 0.7)
    v_ref = 0.8 * v + 0.05 * g + 0.7 * eta
    torch.testing.assert_close(v_new, v_ref)
    torch.testing.assert_close(z_new, z + v_ref)


def test_leapfrog_matches_hand_computation_and_reverses() -> None:
    energy = GaussianEnergy(torch.zeros(2), torch.tensor([[1.0, 0.3], [0.3, 0.5]]))
    target = BoltzmannTarget(energy)
    z0 = (torch.randn(3, 2, generator=_gen(1)),)
    p0 = (torch.randn(3, 2, generator=_gen(2)),)
    _, g0 = target.log_prob_and_grad(z0)
    z1, p1, _, _ = leapfrog(z0, p0, g0, target.log_prob_and_grad, 0.1, 1)
    p_half = p0[0] + 0.05 * energy.score(z0[0])
    z_ref = z0[0] + 0.1 * p_half
    torch.testing.assert_close(z1[0], z_ref)
    torch.testing.assert_close(p1[0], p_half + 0.05 * energy.score(z_ref))
    # Time reversibility: run 5 steps forward, flip momentum, 5 steps back.
    z5, p5, _, g5 = leapfrog(z0, p0, g0, target.log_prob_and_grad, 0.1, 5)
    zb, pb, _, _ = leapfrog(z5, (-p5[0],), g5, target.log_prob_and_grad, 0.1, 5)
    torch.testing.assert_close(zb[0], z0[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(-pb[0], p0[0], atol=1e-5, rtol=1e-5)


def test_mppi_update_weights() -> None:
    cand = torch.tensor([[[0.0, 0.0]], [[2.0, 4.0]]])  # K=2, batch=1
    logw = torch.tensor([[0.0], [math.log(3.0)]])
    torch.testing.assert_close(mppi_update(cand, logw), torch.tensor([[1.5, 3.0]]))


def test_polynomial_schedule() -> None:
    sched = PolynomialDecay(10, 1000, 2)
    assert sched(0) == pytest.approx(0.01)
    assert sched(1000) == pytest.approx((10 * 2) ** -2)
    assert Constant(0.3)(123) == 0.3


# --- a step equals the pure update with the sampler's own noise ------------------------


def test_langevin_step_uses_generator_noise() -> None:
    target = _std_target()
    x = torch.randn(6, 3, generator=_gen(3))
    state, info = Langevin(0.1).step(target, Langevin(0.1).init(x), _gen(4))
    eta = torch.randn(6, 3, generator=_gen(4))
    torch.testing.assert_close(state.x, langevin_update(x, -x, 0.1, eta, math.sqrt(0.2)))
    assert state.step == 1
    assert info.step_size == pytest.approx(0.1)


def test_langevin_options_clip_clamp_and_noise_scale() -> None:
    target = BoltzmannTarget(GaussianEnergy(torch.zeros(2), torch.eye(2) * 0.01))  # steep
    x = torch.full((4, 2), 0.5)
    sampler = Langevin(0.1, noise_scale=0.005, grad_clip=0.01, clamp=(0.0, 0.52))
    state, _ = sampler.step(target, sampler.init(x), _gen(5))
    eta = torch.randn(4, 2, generator=_gen(5))
    expected = (x + 0.1 * torch.full_like(x, -0.01) + 0.005 * eta).clamp(0.0, 0.52)
    torch.testing.assert_close(state.x, expected)


@pytest.mark.parametrize(
    "sampler",
    [Langevin(0.1, noise_scale=0.0), SGHMC(0.1, beta=0.5, noise_scale=0.0)],
    ids=["langevin", "sghmc"],
)
def test_zero_gradient_and_zero_noise_leave_state_unchanged(sampler: Langevin | SGHMC) -> None:
    x = torch.randn(5, 3, generator=_gen(6))
    state, _ = run(sampler, FlatTarget(), sampler.init(x), 10, generator=_gen(7))
    torch.testing.assert_close(state.x, x, atol=0, rtol=0)


SAMPLERS = {
    "langevin": lambda: Langevin(0.05),
    "mala": lambda: Langevin(0.05, mh=True),
    "sghmc": lambda: SGHMC(0.05, beta=0.3),
    "hmc": lambda: HMC(0.1, n_leapfrog=3),
    "mppi": lambda: MPPI(0.1, n_samples=4),
    "parallel-tempering": lambda: ParallelTempering(0.05, n_temperatures=3, max_temperature=4.0),
    "annealed-langevin": lambda: AnnealedLangevin(0.05, initial_temperature=5.0, n_anneal=2),
}


@pytest.mark.parametrize("name", sorted(SAMPLERS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_dtype_device_preserved(name: str, dtype: torch.dtype) -> None:
    target = BoltzmannTarget(MLPEnergy((2, 3), hidden=(8,)).to(dtype))
    sampler = SAMPLERS[name]()
    x = torch.randn(7, 2, 3, dtype=dtype)
    state, trace = run(sampler, target, sampler.init(x), 3, generator=_gen(8), trajectory=True)
    assert state.x.shape == x.shape
    assert state.x.dtype == dtype
    assert state.x.device == x.device
    assert trace is not None
    assert len(trace) == 3
    assert trace[0].shape == x.shape


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_same_seed_same_chain(name: str) -> None:
    target = _std_target()
    sampler = SAMPLERS[name]()
    x = torch.randn(4, 3, generator=_gen(9))
    a, _ = run(sampler, target, sampler.init(x), 5, generator=_gen(10))
    b, _ = run(sampler, target, sampler.init(x), 5, generator=_gen(10))
    torch.testing.assert_close(a.x, b.x, atol=0, rtol=0)


def test_state_dict_round_trip_continues_identically() -> None:
    target = _std_target()
    sampler = SGHMC(0.05, beta=0.2)
    state, _ = run(
        sampler, target, sampler.init(torch.randn(4, 3, generator=_gen(11))), 3, generator=_gen(12)
    )
    saved = state.state_dict()
    restored = SGHMCState.from_state_dict(saved)
    assert restored.step == 3
    a, _ = run(sampler, target, state, 4, generator=_gen(13))
    b, _ = run(sampler, target, restored, 4, generator=_gen(13))
    torch.testing.assert_close(a.x, b.x, atol=0, rtol=0)
    torch.testing.assert_close(a.momentum[0], b.momentum[0], atol=0, rtol=0)
    other = SGHMCState(position=(torch.zeros(1, 3),))
    other.load_state_dict(saved)
    torch.testing.assert_close(other.x, state.x)
    torch.testing.assert_close(other.momentum[0], state.momentum[0])
    with pytest.raises(ValueError, match=r"missing the entry 'position\.0'"):
        ChainState.from_state_dict({"step": 0, "n_position": 1})
    # a state type without momentum restores the position only
    plain = ChainState.from_state_dict(saved)
    assert type(plain) is ChainState
    assert plain.step == 3
    assert sampler.state_dict() == {
        "class": "SGHMC",
        "step_size": 0.05,
        "beta": 0.2,
        "noise_scale": None,
        "grad_clip": None,
        "clamp": None,
    }


def test_thinning_and_callback() -> None:
    seen: list[int] = []
    sampler = Langevin(0.01)
    state, trace = run(
        sampler,
        _std_target(),
        sampler.init(torch.zeros(2, 3)),
        10,
        thin=5,
        trajectory=True,
        callback=lambda i, s, info: seen.append(s.step),
        generator=_gen(14),
    )
    assert seen == list(range(1, 11))
    assert trace is not None
    assert len(trace) == 2
    torch.testing.assert_close(trace[-1], state.x)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Langevin(-0.1), "step_size"),
        (lambda: Langevin(float("nan")), "step_size"),
        (lambda: Langevin(0.1, noise_scale=-1.0), "noise_scale"),
        (lambda: Langevin(0.1, grad_clip=0.0), "grad_clip"),
        (lambda: Langevin(0.1, clamp=(1.0, 0.0)), "clamp"),
        (lambda: Langevin(0.1, mh=True, clamp=(0.0, 1.0)), "clamp"),
        (lambda: SGHMC(0.1, beta=0.0), "beta"),
        (lambda: SGHMC(0.1, beta=1.5), "beta"),
        (lambda: SGHMC(float("inf")), "step_size"),
        (lambda: HMC(0.1, n_leapfrog=0), "n_leapfrog"),
        (lambda: MPPI(0.1, n_samples=0), "n_samples"),
        (lambda: CoopNet(0.1, n_x=0), "n_x"),
        (lambda: PolynomialDecay(10, -1, 2), "b"),
        (lambda: ReplayBuffer(0, lambda n, g: torch.zeros(n, 1)), "capacity"),
        (lambda: ReplayBuffer(10, lambda n, g: torch.zeros(n, 1), reinit_prob=1.5), "reinit_prob"),
    ],
)
def test_invalid_hyperparameters_name_the_argument(make, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        make()


def test_init_rejects_bad_starting_points() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        Langevin(0.1).init(torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(ValueError, match="batch"):
        Langevin(0.1).init((torch.zeros(3, 2), torch.zeros(4, 2)))
    with pytest.raises(ValueError, match="floating-point"):
        Langevin(0.1).init(torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="n_steps"):
        run(Langevin(0.1), _std_target(), Langevin(0.1).init(torch.zeros(1, 3)), -1)


def test_mh_samplers_refuse_stochastic_targets_and_nan() -> None:
    gen = MLPGenerator(2, 2, hidden=(4,), batch_norm=False, sigma=0.5)
    target = AugmentedTarget(MLPEnergy((2,), hidden=(4,)), gen)
    state = Langevin(0.1).init(gen.sample(3))
    with pytest.raises(ValueError, match="stochastic"):
        Langevin(0.1, mh=True).step(target, state)
    with pytest.raises(ValueError, match="stochastic"):
        HMC(0.1).step(target, state)

    class NaNTarget(Target):
        def log_prob(self, position: Position) -> torch.Tensor:
            return position[0].sum(1) * float("nan")

    with pytest.raises(FloatingPointError, match="NaN"):
        Langevin(0.1, mh=True).step(NaNTarget(), Langevin(0.1).init(torch.zeros(2, 2)))


# --- targets ---------------------------------------------------------------------------


def test_tempered_and_product_of_experts() -> None:
    e1 = GaussianEnergy(torch.zeros(2), torch.eye(2))
    e2 = GaussianEnergy(torch.ones(2), torch.eye(2) * 2)
    x = torch.randn(5, 2)
    t = tempered(BoltzmannTarget(e1), 2.0)
    torch.testing.assert_close(t.log_prob((x,)), -e1(x) / 2)
    poe = ProductOfExperts([e1, e2], weights=[1.0, 0.5])
    torch.testing.assert_close(poe.log_prob((x,)), -(e1(x) + 0.5 * e2(x)))
    with pytest.raises(ValueError, match="temperature"):
        BoltzmannTarget(e1, temperature=0.0)
    with pytest.raises(ValueError, match="weights"):
        ProductOfExperts([e1, e2], weights=[1.0])


def test_masked_target_moves_only_free_coordinates() -> None:
    base = _std_target()
    observed = torch.tensor([[5.0, -5.0, 0.0]]).expand(8, 3)
    mask = torch.tensor([False, False, True])
    target = MaskedTarget(base, mask, observed)
    for sampler in (Langevin(0.1), SGHMC(0.1, 0.5), HMC(0.1, 3), MPPI(0.2, 3)):
        state, _ = run(sampler, target, sampler.init(torch.zeros(8, 3)), 5, generator=_gen(15))
        torch.testing.assert_close(state.x[:, :2], observed[:, :2])
        assert float(state.x[:, 2].abs().sum()) > 0


def test_augmented_target_first_step_and_x_only_variant() -> None:
    energy = GaussianEnergy(torch.zeros(2), torch.eye(2))
    gen = MLPGenerator(2, 2, hidden=(), batch_norm=False, output_norm="none", sigma=0.5)
    x, h = gen.sample(6, _gen(16))
    target = AugmentedTarget(energy, gen, inner_step_size=0.1)
    gx, gh = target.grad((x, h))  # the first gradient of a new target: h* = h
    torch.testing.assert_close(gx, energy.score(x))  # h* = h: only the model's gradient
    hg = h.clone().requires_grad_(True)
    (ref_h,) = torch.autograd.grad(gen.log_prob(x, hg).sum(), hg)
    torch.testing.assert_close(gh, ref_h)
    # Later steps: Delta_x = -dE/dx + (g(h) - g(h*)) / sigma^2, with h* from the inner step.
    gx1, _ = target.grad((x, h), generator=_gen(17))
    eta = torch.randn(h.shape, generator=_gen(17))
    h_star = h + 0.1 * ref_h + math.sqrt(0.2) * eta
    with torch.no_grad():
        expected = energy.score(x) + (gen(h) - gen(h_star)) / 0.25
    torch.testing.assert_close(gx1, expected)
    target.restart()  # new chains from ancestral samples: the first-step rule again
    torch.testing.assert_close(target.grad((x, h))[0], energy.score(x))
    # The authors' variant freezes h and follows -dE/dx.
    x_only = AugmentedTarget(energy, gen, variant="x-only")
    state, _ = run(Langevin(0.1), x_only, Langevin(0.1).init((x, h)), 3, generator=_gen(18))
    torch.testing.assert_close(state.position[1], h, atol=0, rtol=0)
    with pytest.raises(NotImplementedError, match="no tractable log-density"):
        target.log_prob((x, h))
    with pytest.raises(ValueError, match="sigma > 0"):
        AugmentedTarget(energy, MLPGenerator(2, 2, hidden=(4,)))


@pytest.mark.parametrize(
    "sampler",
    [
        Langevin(0.1, noise_scale=0.01, grad_clip=0.5, clamp=(-1.0, 1.0)),
        Langevin(PolynomialDecay(10, 1000, 2), mh=True),
        SGHMC(0.02, beta=0.3, noise_scale=0.0),
        HMC(0.2, n_leapfrog=7, mass=2.0),
        MPPI(0.3, n_samples=9, temperature=0.5),
        CoopNet(0.01, n_x=3, n_h=4),
        ParallelTempering(0.05, n_temperatures=4, max_temperature=20.0, swap="random"),
        ParallelTempering(PolynomialDecay(10, 1000, 2), 4, 30.0, swap="random", scale_step_size=False),
        AnnealedLangevin(0.02, initial_temperature=50.0, n_anneal=200, mh=True),
        AnnealedLangevin(0.02, initial_temperature=5.0, n_anneal=0, mh=True, scale_step_size=False),
        BlockGibbs(),
        BlockGibbs(mean_field_visible=True),
        TemperatureDrivenGibbs(0.5, 0.3, mean_field_visible=True),
    ],
    ids=repr,
)
def test_to_config_from_config_round_trip(sampler: Any) -> None:
    from nrf.samplers import SAMPLERS
    from nrf.samplers.base import Sampler

    config = sampler.to_config()
    assert config["name"] in SAMPLERS.names()
    rebuilt = Sampler.from_config(config)
    assert type(rebuilt) is type(sampler)
    assert rebuilt.to_config() == config
    assert SAMPLERS.build(config) == sampler
    with pytest.raises(ValueError, match=r"sampler\.bogus: not an argument of"):
        SAMPLERS.build({**config, "bogus": 1}, key="sampler")


def test_aliases_and_mala_spec() -> None:
    from nrf.samplers import SAMPLERS

    assert SAMPLERS.build({"name": "sgld", "step_size": 0.1}) == Langevin(0.1)
    mala = SAMPLERS.build({"name": "mala", "step_size": 0.1})
    assert mala.mh
    assert mala.to_config()["name"] == "langevin"


def test_mppi_on_a_masked_target_keeps_observed_values() -> None:
    observed = torch.ones(4, 3)
    mask = torch.tensor([True, False, True])
    target = MaskedTarget(_std_target(), mask, observed)
    sampler = MPPI(0.3, n_samples=6)
    state, _ = run(sampler, target, sampler.init(torch.zeros(4, 3)), 4, generator=_gen(40))
    torch.testing.assert_close(state.x[:, 1], observed[:, 1])


def test_coopnet_requires_augmented_target() -> None:
    with pytest.raises(TypeError, match="AugmentedTarget"):
        CoopNet(0.1).step(_std_target(), CoopNet(0.1).init((torch.zeros(2, 3), torch.zeros(2, 3))))


# --- replay buffer ---------------------------------------------------------------------


def test_replay_buffer_sampling_and_reinit_fraction() -> None:
    buf = ReplayBuffer(1000, lambda n, g: torch.full((n, 2), -1.0), reinit_prob=0.05)
    first = buf.sample(10, _gen(19))
    assert torch.equal(first, torch.full((10, 2), -1.0))
    buf.push(torch.arange(1000, dtype=torch.float32).view(500, 2))
    assert len(buf) == 500
    draws = buf.sample(20_000, _gen(20))
    fresh = (draws[:, 0] == -1.0).float().mean()
    assert abs(float(fresh) - 0.05) < 4 * math.sqrt(0.05 * 0.95 / 20_000)
    assert set(draws[draws[:, 0] >= 0][:, 0].long().tolist()) <= set(range(0, 1000, 2))


def test_replay_buffer_overwrites_oldest_and_round_trips() -> None:
    buf = ReplayBuffer(4, lambda n, g: torch.zeros(n, 1), reinit_prob=0.0)
    buf.push(torch.tensor([[1.0], [2.0], [3.0]]))
    buf.push(torch.tensor([[4.0], [5.0]]))
    assert len(buf) == 4
    stored = set(buf.sample(200, _gen(21)).squeeze(1).tolist())
    assert stored == {2.0, 3.0, 4.0, 5.0}
    assert buf.contents().squeeze(1).tolist() == [2.0, 3.0, 4.0, 5.0]  # oldest first
    assert buf.contents(2).squeeze(1).tolist() == [4.0, 5.0]
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(4, lambda n, g: torch.zeros(n, 1)).contents()
    other = ReplayBuffer(4, lambda n, g: torch.zeros(n, 1))
    other.load_state_dict(buf.state_dict())
    torch.testing.assert_close(other.sample(50, _gen(22)), buf.sample(50, _gen(22)))
    with pytest.raises(ValueError, match="non-finite"):
        buf.push(torch.tensor([[float("inf")]]))
    with pytest.raises(ValueError, match="do not fit"):
        buf.push(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(8, lambda n, g: torch.zeros(n, 1)).load_state_dict(buf.state_dict())


@dataclass
class _SweepState(ChainState):
    """A sampler state of its own: sweeps made and a per-chain flag field."""

    flips: tuple[torch.Tensor, ...] = ()


class _CoordinateGibbs(Sampler):
    """Exact Gibbs sweeps on a standard normal target: no step size, no gradient."""

    def init(self, z: Any) -> _SweepState:
        x = z if isinstance(z, torch.Tensor) else z[0]
        return _SweepState(position=(x.detach(),), flips=(torch.zeros(x.shape[0]),))

    def step(
        self, target: Any, state: _SweepState, generator: torch.Generator | None = None
    ) -> tuple[_SweepState, StepInfo]:
        x = state.x.clone()
        for j in range(x.shape[1]):
            x[:, j] = torch.randn(x.shape[0], generator=generator)
        return _SweepState(position=(x,), step=state.step + 1, flips=(state.flips[0] + 1,)), StepInfo()

    def hyperparameters(self) -> dict[str, Any]:
        return {}


def test_a_sampler_without_step_size_fits_the_contract() -> None:
    """A Gibbs-style sampler needs no step size: its own state and info types go through
    ``run``, ``state_dict`` and an objective unchanged."""
    sampler = _CoordinateGibbs()
    state, trace = run(
        sampler, _std_target(), sampler.init(torch.zeros(500, 2)), 3, generator=_gen(50), trajectory=True
    )
    assert isinstance(state, _SweepState)
    assert float(state.flips[0][0]) == 3
    assert trace is not None
    assert len(trace) == 3
    assert float(state.x.var()) == pytest.approx(1.0, rel=0.15)
    restored = _SweepState.from_state_dict(state.state_dict())
    torch.testing.assert_close(restored.flips[0], state.flips[0])
    from nrf.data import Batch
    from nrf.energies import GaussianEnergy as Gauss
    from nrf.objectives import ContrastiveDivergence

    class _Ctx:
        generator = _gen(51)
        step = 0

        def update(self, group: str, loss: torch.Tensor) -> None:
            self.loss = float(loss)

    ctx = _Ctx()
    metrics = ContrastiveDivergence(Gauss(torch.zeros(2), torch.eye(2)), sampler, 2).training_step(
        Batch(torch.zeros(8, 2)), ctx
    )
    assert set(metrics) >= {"loss", "energy_samples"}
