"""Trajectory models: simulators, windows, transition networks, objectives, rollouts,
metrics and ``nrf rollout``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from nrf.applications.trajectories import rollout, rollouts_of, score_rollouts
from nrf.cli.main import main
from nrf.data import Batch
from nrf.data.bouncing_ball import BallDynamics, reflect, simulate_bouncing_ball
from nrf.data.robot import ACTION_DIM, STATE_DIM, simulate_pusher
from nrf.data.trajectories import load_trajectories, transition_windows
from nrf.energies import ConditionedEnergy, TransitionEnergy, TransitionPredictor, paper_potential
from nrf.metrics.trajectories import frechet_distance, frechet_per_step, rollout_mse
from nrf.objectives import OBJECTIVES, TransitionEBM, TransitionRegression

# --- data ------------------------------------------------------------------------------


def test_bouncing_ball_is_seeded_and_stays_in_the_box() -> None:
    a = simulate_bouncing_ball(20, 300, seed=3)
    b = simulate_bouncing_ball(20, 300, seed=3)
    assert a.shape == (20, 300, 2)
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, simulate_bouncing_ball(20, 300, seed=4))
    r = BallDynamics().radius
    assert a.min() >= r - 1e-6
    assert a.max() <= 1 - r + 1e-6
    # drag, friction and restitution <= 1 never speed the ball up: a step is never longer
    # than dt times the fastest start
    dyn = BallDynamics()
    steps = np.linalg.norm(np.diff(a, axis=1), axis=2)
    assert steps.max() <= dyn.dt * dyn.speed_range[1] + 1e-6
    # friction slows every ball: the last steps are shorter than the first on average
    assert steps[:, -20:].mean() < steps[:, :20].mean()


def test_reflect_mirrors_positions_and_reverses_velocity() -> None:
    p = np.array([[1.02, 0.5], [-0.03, 0.2]])
    v = np.array([[1.0, 0.3], [-2.0, 0.1]])
    reflect(p, v, 0.0, 1.0, 0.5)
    np.testing.assert_allclose(p, [[0.98, 0.5], [0.03, 0.2]])
    np.testing.assert_allclose(v, [[-0.5, 0.3], [1.0, 0.1]])


def test_bouncing_ball_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="restitution"):
        BallDynamics(restitution=1.5)
    with pytest.raises(ValueError, match="n_steps"):
        simulate_bouncing_ball(2, 0)


def test_transition_windows_with_actions() -> None:
    states = np.arange(2 * 6 * 2, dtype=np.float32).reshape(2, 6, 2)
    actions = -np.arange(2 * 6 * 1, dtype=np.float32).reshape(2, 6, 1)
    ctx, nxt = transition_windows(states, actions)
    assert ctx.shape == (6, 3, 3)
    assert nxt.shape == (6, 2)
    # window 1 of trajectory 1: states 1..3 with their actions, next state 4
    np.testing.assert_array_equal(ctx[4, :, :2], states[1, 1:4])
    np.testing.assert_array_equal(ctx[4, :, 2], actions[1, 1:4, 0])
    np.testing.assert_array_equal(nxt[4], states[1, 4])
    with pytest.raises(ValueError, match="no transition"):
        transition_windows(states[:, :3])
    with pytest.raises(ValueError, match="actions"):
        transition_windows(states, actions[:, :4])


def test_pusher_trajectories_are_seeded() -> None:
    a = simulate_pusher(2, 12, seed=5)
    b = simulate_pusher(2, 12, seed=5)
    assert a.states.shape == (2, 12, STATE_DIM)
    assert a.actions.shape == (2, 12, ACTION_DIM)
    np.testing.assert_array_equal(a.states, b.states)
    assert np.abs(a.actions).max() <= 2.0
    assert np.abs(np.diff(a.states[:, :, :7], axis=1)).max() > 1e-3  # the arm moves
    assert not np.array_equal(a.states, simulate_pusher(2, 12, seed=6).states)


def test_load_trajectories_sets() -> None:
    ball = load_trajectories("bouncing-ball", n_train=3, n_test=2, steps=20)
    assert ball.train.shape == (3, 20, 2)
    assert ball.test.shape == (2, 20, 2)
    assert ball.action_dim == 0
    assert not np.array_equal(ball.train[:2], ball.test)
    arm = load_trajectories("pusher-conditional", n_train=2, n_test=2, steps=8)
    assert arm.state_dim == STATE_DIM
    assert arm.action_dim == ACTION_DIM
    with pytest.raises(ValueError, match="name"):
        load_trajectories("pendulum")


# --- networks --------------------------------------------------------------------------


@pytest.mark.parametrize("architecture", ["attention-conv", "mlp"])
@pytest.mark.parametrize("coordinates", ["relative", "absolute"])
def test_transition_energy_shapes_and_second_derivatives(architecture: str, coordinates: str) -> None:
    torch.manual_seed(0)
    e = TransitionEnergy(3, action_dim=2, architecture=architecture, coordinates=coordinates)
    x = torch.randn(5, 3, requires_grad=True)
    c = torch.randn(5, 3, 5)
    out = e.class_energy(x, c)
    assert out.shape == (5,)
    (g,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    g.pow(2).sum().backward()  # training through the sampler's gradient needs this
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in e.parameters())
    torch.testing.assert_close(ConditionedEnergy(e, c)(x.detach()), out.detach())
    with pytest.raises(ValueError, match=r"context: expected shape \(batch, 3, 5\)"):
        e.class_energy(x, torch.randn(5, 3, 3))
    with pytest.raises(ValueError, match="expected 5 rows"):
        e.class_energy(x, torch.randn(4, 3, 5))
    with pytest.raises(TypeError, match="class_energy"):
        e(x)


def test_predictor_energy_is_half_squared_error_and_relative_output() -> None:
    torch.manual_seed(0)
    f = TransitionPredictor(2, architecture="mlp", spectral_norm=True).eval()  # eval: no power iteration
    c, x = torch.randn(4, 3, 2), torch.randn(4, 2)
    torch.testing.assert_close(f.class_energy(x, c), 0.5 * (x - f.predict(c)).pow(2).sum(1))
    # relative coordinates: zeroing the last layer predicts "stay at the last state"
    f = TransitionPredictor(2)
    with torch.no_grad():
        f.head.weight.zero_()
        f.head.bias.zero_()
    torch.testing.assert_close(f.predict(c), c[:, -1])
    with pytest.raises(ValueError, match="spectral_norm"):
        TransitionPredictor(2, spectral_norm=True)  # attention-conv has none


def test_set_normalization_checks() -> None:
    e = TransitionEnergy(2)
    e.set_normalization(torch.zeros(2), torch.ones(2), torch.full((2,), 0.1))
    torch.testing.assert_close(e.step_std, torch.full((2,), 0.1))
    with pytest.raises(ValueError, match="step_std must be finite and > 0"):
        e.set_normalization(torch.zeros(2), torch.ones(2), torch.zeros(2))
    with pytest.raises(ValueError, match=r"std: expected shape \(2,\)"):
        e.set_normalization(torch.zeros(2), torch.ones(3))


def test_trajectory_presets() -> None:
    presets = {"trajectory": TransitionEnergy, "trajectory-ff": TransitionPredictor,
               "trajectory-fc": TransitionEnergy, "trajectory-fc-sn": TransitionPredictor}  # fmt: skip
    for name, cls in presets.items():
        model = paper_potential(name, state_dim=9, action_dim=7)
        assert isinstance(model, cls)
        assert model.state_dim == 9
    assert paper_potential("trajectory-fc-sn").spectral_norm


# --- objectives ------------------------------------------------------------------------


class _Ctx:
    """A step context with one Adam optimizer."""

    def __init__(self, objective: Any, lr: float = 1e-3) -> None:
        self.generator = torch.Generator().manual_seed(0)
        self.step = 0
        self.opt = torch.optim.Adam(objective.optimizer_groups()["energy"], lr=lr, betas=(0.0, 0.999))

    def update(self, group: str, loss: torch.Tensor) -> None:
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.step += 1


def _ball_batch(n_traj: int = 200, steps: int = 60, seed: int = 0) -> Batch:
    ctx, nxt = transition_windows(simulate_bouncing_ball(n_traj, steps, seed=seed))
    return Batch(torch.from_numpy(nxt), torch.from_numpy(ctx))


def _copy_last_mse(batch: Batch) -> float:
    assert batch.y is not None
    return float((batch.y[:, -1] - batch.x).pow(2).mean())


def test_regression_learns_the_ball_better_than_constant_position() -> None:
    torch.manual_seed(0)
    train, test = _ball_batch(seed=0), _ball_batch(50, seed=1)
    obj = TransitionRegression(TransitionPredictor(2, architecture="mlp"))
    obj.initialize_batch(train)
    ctx = _Ctx(obj, 3e-3)
    g = torch.Generator().manual_seed(1)
    for _ in range(300):
        idx = torch.randint(0, len(train), (256,), generator=g)
        ctx_metrics = obj.training_step(train.select(idx), ctx)
    assert np.isfinite(ctx_metrics["loss"])
    mse = float((obj.predict(test.y) - test.x).pow(2).mean())
    assert mse < 0.2 * _copy_last_mse(test)  # constant velocity is most of the dynamics


@pytest.mark.parametrize("proposal", ["langevin", "mppi"])
def test_transition_ebm_learns_to_move_its_chains_towards_the_next_state(proposal: str) -> None:
    torch.manual_seed(0)
    train, test = _ball_batch(seed=0), _ball_batch(50, seed=1)
    steps = 10 if proposal == "langevin" else 30  # MPPI moves at most mppi_sigma (0.1 step sd) a step
    obj = TransitionEBM(TransitionEnergy(2, architecture="mlp"), proposal=proposal, steps=steps)
    obj.initialize_batch(train)
    ctx = _Ctx(obj, 1e-3)
    g = torch.Generator().manual_seed(1)
    before = float((obj.predict(test.y, g) - test.x).pow(2).mean())
    for _ in range(150):
        idx = torch.randint(0, len(train), (128,), generator=g)
        metrics = obj.training_step(train.select(idx), ctx)
    assert {"loss", "energy_data", "energy_samples", "sample_error", "loss_kl"} <= set(metrics)
    after = float((obj.predict(test.y, g) - test.x).pow(2).mean())
    assert after < 0.5 * before
    assert after < _copy_last_mse(test)


def test_transition_ebm_noisy_starts_are_in_step_units_and_predictions_start_at_the_last_state() -> None:
    batch = _ball_batch(20, 20)
    obj = TransitionEBM(TransitionEnergy(2, architecture="mlp"), steps=1, noise=0.0, start="noise",
                        start_noise=2.0)  # fmt: skip
    obj.initialize_batch(batch)
    context = batch.y.repeat(200, 1, 1)
    last = context[:, -1, :2]
    g = torch.Generator().manual_seed(0)
    spread = (obj.starts(context, g) - last).std(0)
    torch.testing.assert_close(spread, 2.0 * obj.energy.step_std, rtol=0.1, atol=0.0)
    assert torch.equal(obj.starts(context, g, noisy=False), last)
    first, second = obj.predict(batch.y, g), obj.predict(batch.y, g)
    assert torch.equal(first, second)  # noise 0: the prediction does not depend on the start noise


class _Capture:
    """A step context that keeps the gradient of the loss instead of stepping."""

    def __init__(self, objective: Any, into: dict[str, torch.Tensor]) -> None:
        self.generator = torch.Generator().manual_seed(0)
        self.step = 0
        self.objective, self.into = objective, into

    def update(self, group: str, loss: torch.Tensor) -> None:
        params = self.objective.optimizer_groups()[group]
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        self.into["g"] = torch.cat([g.flatten() for g in grads if g is not None])


def test_transition_ebm_gradient_paths() -> None:
    """ "none" gives the parameters only the contrastive gradient; "kl" and "full" add the
    path through the chains (different gradients from the same noise)."""
    batch = _ball_batch(20, 20)
    grads = {}
    for backprop in ("none", "kl", "full"):
        torch.manual_seed(0)
        obj = TransitionEBM(TransitionEnergy(2, architecture="mlp"), steps=3, step_size=0.01,
                            backprop=backprop, alpha=0.0)  # fmt: skip
        obj.initialize_batch(batch)
        captured: dict[str, torch.Tensor] = {}

        obj.training_step(batch, _Capture(obj, captured))
        grads[backprop] = captured["g"]
    assert not torch.allclose(grads["none"], grads["kl"])
    assert not torch.allclose(grads["none"], grads["full"])


class _Bowl(torch.nn.Module):
    """E(x) = |(x - centre) / scale|^2 / (2 sigma^2), the denoising loss's minimizer for
    rows that all sit at ``centre``."""

    def __init__(self, centre: torch.Tensor, scale: torch.Tensor, sigma: float) -> None:
        super().__init__()
        self.centre, self.scale, self.sigma = centre, scale, sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.centre) / self.scale).pow(2).sum(1) / (2 * self.sigma**2)


def test_denoising_loss_in_scaled_coordinates_vanishes_at_its_minimizer() -> None:
    from nrf.objectives.denoising_score_matching import denoising_loss

    g = torch.Generator().manual_seed(0)
    centre, scale, sigma = torch.tensor([[0.3, -2.0]]), torch.tensor([0.01, 3.0]), 0.5
    x = centre.repeat(500, 1)
    noise, levels = torch.randn(x.shape, generator=g), torch.full((500,), sigma)
    exact = denoising_loss(_Bowl(centre, scale, sigma), x, noise, levels, sigma, scale)
    assert float(exact.detach()) < 1e-10
    # a bowl of the wrong width: residual (1 - 1/4) eps / sigma, loss 1/2 (3/4)^2 |eps|^2
    wide = denoising_loss(_Bowl(centre, scale, 2 * sigma), x, noise, levels, sigma, scale)
    torch.testing.assert_close(wide.detach(), 0.5 * 0.75**2 * noise.pow(2).sum(1).mean())
    # without a scale the same loss in the data's own units
    plain = denoising_loss(_Bowl(centre, torch.ones(2), sigma), x, noise, levels, sigma)
    assert float(plain.detach()) < 1e-10


def test_transition_ebm_denoising_term_trains_a_minimum_at_the_next_state() -> None:
    """With only the denoising term (contrast_weight 0: no training chains), 20 Langevin
    steps from the last state land near the next state: the term alone shapes a bowl
    around it."""
    torch.manual_seed(0)
    train, test = _ball_batch(seed=0), _ball_batch(50, seed=1)
    energy = TransitionEnergy(2, architecture="mlp", activation="silu")
    assert isinstance(energy.trunk.net[1], torch.nn.SiLU)
    obj = TransitionEBM(energy, steps=20, contrast_weight=0.0, dsm_weight=1.0, dsm_sigma=0.5)
    obj.initialize_batch(train)
    ctx = _Ctx(obj, 1e-3)
    g = torch.Generator().manual_seed(1)
    for _ in range(200):
        idx = torch.randint(0, len(train), (128,), generator=g)
        metrics = obj.training_step(train.select(idx), ctx)
    assert set(metrics) == {"loss", "loss_dsm"}  # no chains were run
    assert metrics["loss_dsm"] < 0.5  # 1.0 = d / 2 for an energy with no gradient
    after = float((obj.predict(test.y, g) - test.x).pow(2).mean())
    assert after < 0.2 * _copy_last_mse(test)
    assert obj.config_args()["dsm_weight"] == 1.0
    assert obj.config_args()["dsm_sigma"] == 0.5


def test_transition_objectives_refuse_wrong_inputs() -> None:
    with pytest.raises(TypeError, match="transition model"):
        TransitionEBM(paper_potential("gmm"))
    with pytest.raises(TypeError, match="TransitionPredictor"):
        TransitionRegression(TransitionEnergy(2))
    obj = TransitionEBM(TransitionEnergy(2))
    with pytest.raises(ValueError, match="needs transition data"):
        obj.training_step(Batch(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long)), _Ctx(obj))
    with pytest.raises(TypeError, match="predict"):
        obj.sample(3)
    with pytest.raises(ValueError, match="backprop_steps"):
        TransitionEBM(TransitionEnergy(2), steps=5, backprop_steps=6)
    with pytest.raises(ValueError, match="dsm_weight"):
        TransitionEBM(TransitionEnergy(2), dsm_weight=-1.0)
    with pytest.raises(ValueError, match="dsm_sigma"):
        TransitionEBM(TransitionEnergy(2), dsm_sigma=0.0)
    with pytest.raises(ValueError, match="both 0"):
        TransitionEBM(TransitionEnergy(2), contrast_weight=0.0)
    with pytest.raises(ValueError, match="activation"):
        TransitionEnergy(2, activation="cubic")
    assert (
        OBJECTIVES.build({"name": "transition-ebm", "proposal": "mppi"}, energy=TransitionEnergy(2)).steps
        == 30
    )


# --- rollouts and metrics -------------------------------------------------------------


class _ConstantVelocity:
    """predict: the last state plus the last displacement (exact for straight lines)."""

    def __init__(self, d: int) -> None:
        self.energy = type("E", (), {"state_dim": d})()

    def predict(self, context: torch.Tensor, generator: Any = None) -> torch.Tensor:
        s = context[..., : self.energy.state_dim]
        return 2 * s[:, -1] - s[:, -2]


def test_rollout_of_a_straight_line_is_exact_and_actions_are_checked() -> None:
    line = torch.arange(10.0).view(1, 10, 1).repeat(2, 1, 1)
    pred = rollout(_ConstantVelocity(1), line[:, :3], 7)
    torch.testing.assert_close(pred, line[:, 3:])
    with pytest.raises(ValueError, match="actions"):
        rollout(_ConstantVelocity(1), torch.zeros(2, 3, 2), 4)
    states = np.repeat(np.arange(20.0)[None, :, None], 3, axis=0)
    p, t = rollouts_of(_ConstantVelocity(1), states, None, [0, 5], 10)
    assert p.shape == t.shape == (6, 10, 1)
    np.testing.assert_allclose(p, t)
    with pytest.raises(ValueError, match="starts"):
        rollouts_of(_ConstantVelocity(1), states, None, [10], 10)


def test_metrics_closed_forms() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((20_000, 3))
    # N(0, I) vs N(m, 4 I): ||m||^2 + tr(I + 4 I - 2 * 2 I) = ||m||^2 + 3
    b = 2 * rng.standard_normal((20_000, 3)) + np.array([1.0, 0.0, 2.0])
    assert frechet_distance(a, b) == pytest.approx(5.0 + 3.0, rel=0.03)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    pred = np.stack([a[:100], b[:100]], axis=1)
    true = np.stack([a[100:200], a[200:300]], axis=1)
    fd = frechet_per_step(pred, true)
    assert fd.shape == (2,)
    assert fd[1] > fd[0]
    np.testing.assert_allclose(rollout_mse(np.zeros((3, 2, 2)), np.full((3, 2, 2), 2.0)), [4.0, 4.0])
    with pytest.raises(ValueError, match="NaN"):
        rollout_mse(np.full((1, 2, 1), np.nan), np.zeros((1, 2, 1)))
    with pytest.raises(ValueError, match="same d"):
        frechet_distance(a[:, :2], a)


def test_score_rollouts_of_the_constant_velocity_model() -> None:
    data = load_trajectories("bouncing-ball", n_train=2, n_test=30, steps=80)
    scores = score_rollouts(_ConstantVelocity(2), data, horizon=10, start_every=20)
    assert scores.mse.shape == (10,)
    assert scores.frechet.shape == (77,)
    assert np.all(np.diff(scores.mse) >= -1e-12)  # errors grow with the horizon
    assert json.loads(json.dumps(scores.to_json()))["frechet_mean"] == pytest.approx(scores.frechet_mean)


class _Exploding(_ConstantVelocity):
    """Constant velocity, but rows whose last x coordinate passes ``edge`` jump to inf."""

    def __init__(self, d: int, edge: float) -> None:
        super().__init__(d)
        self.edge = edge

    def predict(self, context: torch.Tensor, generator: Any = None) -> torch.Tensor:
        nxt = super().predict(context, generator)
        return torch.where(nxt[:, :1] > self.edge, torch.full_like(nxt, float("inf")), nxt)


def test_diverged_rollouts_raise_or_score_inf() -> None:
    line = (torch.arange(10.0).view(1, 10, 1) * torch.tensor([1.0, 2.0]).view(2, 1, 1)).contiguous()
    model = _Exploding(1, edge=10.0)  # row 1 (slope 2) passes 10 at step 4 (12), row 0 never
    with pytest.raises(FloatingPointError, match="step 4"):
        rollout(model, line[:, :3], 7)
    pred = rollout(model, line[:, :3], 7, nonfinite="nan")
    torch.testing.assert_close(pred[0], line[0, 3:])
    assert torch.isnan(pred[1, 3:]).all()
    assert torch.isfinite(pred[1, :3]).all()
    data = load_trajectories("bouncing-ball", n_train=2, n_test=30, steps=80)
    scores = score_rollouts(_Exploding(2, edge=1.05), data, horizon=10, start_every=20)
    assert 0.0 < scores.diverged < 1.0
    assert np.isinf(scores.frechet_mean)
    assert np.isfinite(scores.frechet[0])
    out = json.loads(json.dumps(scores.to_json()))
    assert out["frechet_mean"] is None
    assert None in out["frechet"]


# --- command line ----------------------------------------------------------------------


def _config(tmp_path: Path, objective: str, energy: str) -> Path:
    cfg = tmp_path / f"{objective}.toml"
    cfg.write_text(
        f"""
[run]
name = "{objective}"
out_dir = "{tmp_path / "runs"}"
seed = 0
threads = 1
[data]
name = "bouncing-ball"
trajectories = 20
trajectory_steps = 40
[model]
energy = "{energy}"
energy_args = {{ architecture = "mlp" }}
[objective]
name = "{objective}"
[optim.energy]
name = "adam"
lr = 1e-3
betas = [0.0, 0.999]
[train]
steps = 20
batch_size = 64
log_every = 10
checkpoint_every = 10
progress = false
evaluators = []
"""
    )
    return cfg


@pytest.mark.parametrize(("objective", "energy"), [("transition-ebm", "trajectory"),
                                                   ("transition-regression", "trajectory-ff")])  # fmt: skip
def test_train_and_rollout_from_the_command_line(
    tmp_path: Path, objective: str, energy: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", str(_config(tmp_path, objective, energy))]) == 0
    run = tmp_path / "runs" / objective
    out = tmp_path / "roll.npz"
    assert main(["rollout", str(run), "--steps", "12", "--trajectories", "8", "--out", str(out)]) == 0
    with np.load(out, allow_pickle=False) as f:
        assert f["predicted"].shape == f["true"].shape == (8, 12, 2)
        assert f["mse"].shape == (12,)
        assert np.isfinite(f["frechet"]).all()
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads(out.with_suffix(".json").read_text())["steps"] == 12
    assert "Fréchet" in capsys.readouterr().out
    # an existing output is kept unless --overwrite
    assert main(["rollout", str(run), "--steps", "12", "--trajectories", "8", "--out", str(out)]) == 1
    assert "exists" in capsys.readouterr().err
    assert main(["rollout", str(run), "--steps", "0", "--out", str(tmp_path / "x.npz")]) == 1
    assert "--steps must be >= 1" in capsys.readouterr().err


def test_rollout_command_scores_a_diverging_model_instead_of_raising(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", str(_config(tmp_path, "transition-regression", "trajectory-ff"))]) == 0
    import nrf.training.run

    # the trained run's place is taken by a model whose rollouts jump to inf past x = 1.05
    monkeypatch.setattr(nrf.training.run, "load_run", lambda *a, **k: _Exploding(2, edge=1.05))
    out = tmp_path / "roll.npz"
    run = tmp_path / "runs" / "transition-regression"
    assert main(["rollout", str(run), "--steps", "30", "--trajectories", "16", "--out", str(out)]) == 0
    with np.load(out, allow_pickle=False) as f:
        pred, mse = f["predicted"], f["mse"]
    dead = ~np.isfinite(pred).all(axis=(1, 2))
    assert 0 < dead.sum() < len(dead)
    scores = json.loads(out.with_suffix(".json").read_text())
    assert scores["diverged"] == pytest.approx(dead.mean())
    assert scores["frechet_mean"] is None
    assert scores["mse"][-1] is None
    assert np.isfinite(mse[0])
    assert scores["mse"][0] == pytest.approx(float(mse[0]))
    assert "left the finite numbers" in capsys.readouterr().out


def test_rollout_refuses_a_run_on_other_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "gmm.toml"
    cfg.write_text(
        f"""
[run]
name = "gmm"
out_dir = "{tmp_path / "runs"}"
threads = 1
[data]
name = "ring8"
[model]
energy = "gmm"
[objective]
name = "dsm"
[train]
steps = 2
batch_size = 32
progress = false
evaluators = []
"""
    )
    assert main(["train", str(cfg)]) == 0
    assert (
        main(["rollout", str(tmp_path / "runs" / "gmm"), "--steps", "3", "--out", str(tmp_path / "r.npz")])
        == 1
    )
    assert "not a trajectory set" in capsys.readouterr().err


@pytest.mark.parametrize("config", ["ball_ff.toml", "ball_ebm.toml"])
def test_a_trajectory_run_reports_its_one_step_predictions(tmp_path: Path, config: str) -> None:
    """A transition run's report has figures: the 'transitions' evaluator's one-step
    predictions, with their error beside that of staying at the last state."""
    from nrf.training.report import write_report
    from training_helpers import short_trajectory_run

    run, final = short_trajectory_run(tmp_path, config, "data.validation_fraction=0.1")
    assert final["one_step_mse"] > 0
    assert final["one_step_mse_still"] > 0
    assert (run / "plots" / "transitions-step00000006.png").read_bytes()[:4] == b"\x89PNG"
    report = write_report(run).read_text()
    assert "one_step_mse" in report
    assert report.count("data:image/png;base64") >= 2  # the curves and the predictions
