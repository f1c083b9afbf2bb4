"""The IGEBM objective: its loss terms on closed-form cases, the sampling (KL) loss's
gradient through the Langevin steps, the tutorial's Langevin order, configs and resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from nrf.data.batch import Batch
from nrf.energies import TutorialCNNEnergy
from nrf.energies.base import Energy
from nrf.objectives import IGEBM, OBJECTIVES
from nrf.objectives.igebm import ml_loss
from nrf.samplers import SAMPLERS, Langevin, run
from nrf.targets import BoltzmannTarget
from nrf.training.loop import Loop, Streams
from samplers_helpers import one_thread  # noqa: F401 (autouse fixture)
from training_helpers import straight_and_resumed


class Quadratic(Energy):
    """E(x) = a / 2 |x - m|^2 with learnable a (> 0 through log a) and m."""

    rows_independent = True

    def __init__(self, d: int = 2, m: float = 0.0, a: float = 1.0) -> None:
        super().__init__()
        self.event_shape = (d,)
        self.m = nn.Parameter(torch.full((d,), m))
        self.log_a = nn.Parameter(torch.tensor(float(a)).log())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * self.log_a.exp() * (x - self.m).pow(2).sum(1)


class Ctx:
    """A step context that records the loss and takes no optimizer step."""

    def __init__(self, seed: int = 0) -> None:
        self.generator = torch.Generator().manual_seed(seed)
        self.step = 0
        self.losses: list[torch.Tensor] = []

    def update(self, group: str, loss: torch.Tensor) -> None:
        self.losses.append(loss)


def test_ml_losses_closed_forms_and_shared_gradient() -> None:
    e_data = torch.tensor([0.5, 1.5, -1.0])
    e_neg = torch.tensor([2.0, 0.0, 1.0, 3.0], requires_grad=True)
    ml = float(ml_loss(e_data, e_neg, "ml").detach())
    assert ml == pytest.approx(float(e_data.mean() - e_neg.detach().mean()))
    lse = ml_loss(e_data, e_neg, "logsumexp")
    expected = float(e_data.mean() + torch.log(torch.exp(-e_neg.detach()).mean()))
    assert float(lse.detach()) == pytest.approx(expected)
    (g_lse,) = torch.autograd.grad(lse, e_neg)
    (g_soft,) = torch.autograd.grad(ml_loss(e_data, e_neg, "softmax"), e_neg)
    torch.testing.assert_close(g_lse, g_soft)
    torch.testing.assert_close(g_soft, -torch.softmax(-e_neg.detach(), 0))  # Eq. 8: -w_i


def _igebm(energy: nn.Module, **kw: object) -> IGEBM:
    sampler = Langevin(step_size=0.1, noise_scale=0.0)
    args: dict = {"k": 3, "start": "noise", "noise_range": (-1.0, 1.0), "alpha": 0.0, **kw}
    return IGEBM(energy, sampler, **args)


def test_loss_terms_match_their_formulas() -> None:
    energy = Quadratic(m=0.5)
    objective = _igebm(energy, alpha=0.3)
    x = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    ctx = Ctx()
    metrics = objective.training_step(Batch(x), ctx)
    # the negatives: 3 noiseless gradient steps from uniform starts drawn with the same stream
    start = objective._noise(2, torch.Generator().manual_seed(0))
    x_neg = start
    for _ in range(3):
        x_neg = x_neg - 0.1 * (x_neg - 0.5)
    with torch.no_grad():
        e_pos, e_neg = energy(x), energy(x_neg)
    expected = e_pos.mean() - e_neg.mean() + 0.3 * (e_pos.pow(2).mean() + e_neg.pow(2).mean())
    assert float(ctx.losses[0].detach()) == pytest.approx(float(expected), rel=1e-5)
    assert metrics["energy_samples"] == pytest.approx(float(e_neg.mean()), rel=1e-5)


def test_data_noise_and_clamp() -> None:
    objective = _igebm(Quadratic(), data_noise=0.5, data_clamp=(-0.2, 0.2))
    x = torch.zeros(5000, 2)
    noised = objective._data(x, torch.Generator().manual_seed(1))
    assert float(noised.abs().max()) == pytest.approx(0.2)
    free = _igebm(Quadratic(), data_noise=0.5)._data(x, torch.Generator().manual_seed(1))
    assert float(free.std()) == pytest.approx(0.5, rel=0.03)
    with pytest.raises(ValueError, match="data_clamp"):
        _igebm(Quadratic(), data_clamp=(1.0, 0.0))
    with pytest.raises(ValueError, match="loss must be one of"):
        _igebm(Quadratic(), loss="hinge")


def test_kl_loss_gradient_flows_through_the_last_langevin_step() -> None:
    # one noiseless step from x0: x1 = x0 - delta a (x0 - m); L_KL = mean a0/2 |x1 - m0|^2
    # with a0, m0 frozen, so dL/dm = mean a0 (x1 - m0) delta a (per coordinate)
    energy = Quadratic(d=1, m=0.3, a=2.0)
    sampler = Langevin(step_size=0.1, noise_scale=0.0)
    objective = IGEBM(energy, sampler, k=1, start="noise", noise_range=(-1.0, 1.0), alpha=0.0, kl_weight=1.0)
    x0 = torch.tensor([[-0.5], [0.25], [0.9]])
    x1 = objective._kl_negatives(x0, None, energy)
    frozen = {n: p.detach() for n, p in energy.named_parameters()}
    loss = torch.func.functional_call(energy, frozen, (x1,)).mean()
    (grad_m,) = torch.autograd.grad(loss, energy.m)
    a, m, delta = 2.0, 0.3, 0.1
    x1_ref = x0 - delta * a * (x0 - m)
    torch.testing.assert_close(x1.detach(), x1_ref)
    expected = (a * (x1_ref - m) * delta * a).mean()
    assert float(grad_m) == pytest.approx(float(expected), rel=1e-5)


def test_kl_option_trains_and_needs_langevin() -> None:
    energy = Quadratic(m=0.0)
    objective = _igebm(energy, kl_weight=0.5, kl_steps=2)
    ctx = Ctx()
    metrics = objective.training_step(Batch(torch.randn(8, 2)), ctx)
    assert "loss_kl" in metrics
    ctx.losses[0].backward()
    assert energy.m.grad is not None
    assert torch.isfinite(energy.m.grad).all()
    with pytest.raises(ValueError, match="differentiates Langevin steps"):
        IGEBM(energy, SAMPLERS.build({"name": "mppi", "step_size": 0.1}), kl_weight=1.0)
    with pytest.raises(ValueError, match="kl_steps"):
        _igebm(energy, kl_weight=1.0, kl_steps=5)


def test_igebm_learns_a_gaussian_mean_from_a_replay_buffer() -> None:
    torch.manual_seed(0)
    energy = Quadratic(m=-1.0)
    sampler = Langevin(step_size=0.05)
    objective = IGEBM(energy, sampler, k=20, noise_range=(-3.0, 3.0), alpha=0.0, buffer_size=2000)
    data = 1.0 + 0.5 * torch.randn(4000, 2, generator=torch.Generator().manual_seed(1))
    streams = Streams.from_user_seed(0)
    loop = Loop(objective, Batch(data), {"energy": {"name": "adam", "lr": 0.02}}, batch_size=200, steps=300,
                generator=streams.sampler(torch.device("cpu")), data_generator=streams.data())  # fmt: skip
    loop.run()
    torch.testing.assert_close(energy.m.detach(), torch.ones(2), atol=0.15, rtol=0)
    sd = float(energy.log_a.detach().exp().rsqrt())
    assert sd == pytest.approx(0.5, rel=0.25)
    assert len(objective.buffer) == 2000  # type: ignore[arg-type]


def test_sample_steps_and_starts() -> None:
    energy = Quadratic(m=0.5)
    objective = _igebm(energy, start="buffer", buffer_size=10, k=3)
    objective.initialize(torch.zeros(4, 2))  # the event shape of the noise
    noise = objective.sample(4, torch.Generator().manual_seed(0))  # the buffer is empty: noise
    assert noise.shape == (4, 2)
    objective.buffer.push(torch.full((10, 2), 0.5))  # type: ignore[union-attr]
    kept = objective.sample(6, torch.Generator().manual_seed(1), steps=1, init="buffer")
    torch.testing.assert_close(kept, torch.full((6, 2), 0.5))  # at the minimum of E: no move (no noise)
    far = objective.sample(6, torch.Generator().manual_seed(1), steps=1, init="noise")
    assert not torch.allclose(far, torch.full((6, 2), 0.5))
    with pytest.raises(ValueError, match="init='chains': this objective has no chains"):
        objective.sample(2, init="chains")
    with pytest.raises(ValueError, match="init must be one of"):
        objective.sample(2, init="data")


def test_sampling_runs_in_evaluation_mode() -> None:
    class Watch(Quadratic):
        modes: list[bool]

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.modes.append(self.training)
            return super().forward(x)

    energy = Watch()
    energy.modes = []
    objective = _igebm(energy)
    objective.train()
    objective.training_step(Batch(torch.randn(4, 2)), Ctx())
    assert energy.modes[:3] == [False, False, False]  # the 3 Langevin gradients
    assert energy.modes[-1] is True  # the loss's energies
    assert energy.training


def test_noise_first_langevin_evaluates_the_gradient_after_the_noise() -> None:
    energy = Quadratic(d=3, m=0.2, a=3.0)
    target = BoltzmannTarget(energy)
    sampler = Langevin(step_size=0.1, noise_scale=0.05, grad_clip=0.2, clamp=(-1.0, 1.0), noise_first=True)
    x0 = torch.tensor([[0.9, -0.9, 0.0], [0.5, 0.1, -0.3]])
    state, _ = run(sampler, target, sampler.init(x0.clone()), 1, generator=torch.Generator().manual_seed(3))
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(3))
    half = (x0 + 0.05 * noise).clamp(-1, 1)
    grad = (-3.0 * (half - 0.2)).clamp(-0.2, 0.2)  # grad log p
    torch.testing.assert_close(state.x, (half + 0.1 * grad).clamp(-1, 1))
    with pytest.raises(ValueError, match="noise_first"):
        Langevin(step_size=0.1, mh=True, noise_first=True)


@pytest.mark.parametrize("kl_weight", [0.0, 0.5])
def test_a_resumed_fit_repeats_the_straight_one(kl_weight: float) -> None:
    rows = torch.randn(64, 2, generator=torch.Generator().manual_seed(0)) * 0.3 + 1.0

    def objective() -> IGEBM:
        sampler = Langevin(step_size=0.05, noise_scale=0.05, noise_first=True)
        return IGEBM(Quadratic(), sampler, k=3, noise_range=(-2.0, 2.0), buffer_size=50, data_noise=0.01,
                     kl_weight=kl_weight, loss="softmax")  # fmt: skip

    straight, second = straight_and_resumed(objective, rows)
    for a, b in zip(straight.objective.parameters(), second.objective.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert len(second.objective.buffer) == 50
    assert torch.equal(straight.objective.buffer._data, second.objective.buffer._data)


def test_tutorial_config_builds() -> None:
    from nrf.training.build import build_objective
    from nrf.training.config import load_config

    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "mnist_tutorial.toml", [])
    objective = build_objective(cfg)
    assert isinstance(objective, IGEBM)
    assert isinstance(objective.energy, TutorialCNNEnergy)
    assert objective.k == 60
    assert (objective.alpha, objective.data_noise, objective.buffer_size) == (0.1, 0.005, 8192)
    assert cfg.optim["energy"]["betas"] == [0.0, 0.999]
    # a round trip of the registry's config
    again = OBJECTIVES.build(objective.to_config(), energy=objective.energy, sampler=objective.sampler)
    assert again.to_config() == objective.to_config()


def test_jem_trains_a_classifier_and_its_marginal_energy() -> None:
    from nrf.energies import TutorialCNNClassifier
    from nrf.objectives import JEM

    torch.manual_seed(0)
    x = torch.rand(64, 1, 28, 28) * 2 - 1
    y = torch.arange(64) % 10
    x[torch.arange(64), 0, 2 * (y // 5) + 10, 3 * (y % 5) + 5] = 1.0  # a class's bright pixel
    net = TutorialCNNClassifier(hidden=8)
    objective = JEM(net, Langevin(step_size=1.0, noise_scale=0.01, clamp=(-1.0, 1.0)), k=2, buffer_size=100)
    ctx = Ctx()
    metrics = objective.training_step(Batch(x, y), ctx)
    assert {"loss_ce", "accuracy", "loss_ml", "energy_data", "energy_samples"} <= set(metrics)
    with torch.no_grad():
        logits = net.logits(x)
        ce = torch.nn.functional.cross_entropy(logits, y)
    # the loss: CE + E(x+) - E(x-) (alpha 0), the data noised so compare within the noise's effect
    assert metrics["loss_ce"] == pytest.approx(float(ce), rel=1e-5)
    expected = metrics["loss_ce"] + metrics["energy_data"] - metrics["energy_samples"]
    assert float(ctx.losses[0].detach()) == pytest.approx(expected, rel=1e-5)
    assert len(objective.buffer) == 64
    with pytest.raises(ValueError, match="needs labelled data"):
        objective.training_step(Batch(x), ctx)
    with pytest.raises(TypeError, match="needs a class energy"):
        JEM(Quadratic(), Langevin(step_size=1.0))
    with pytest.raises(ValueError, match="cannot both be 0"):
        JEM(net, Langevin(step_size=1.0), classifier_weight=0.0, generative_weight=0.0)


def test_jem_config_builds() -> None:
    from nrf.energies import TutorialCNNClassifier
    from nrf.objectives import JEM
    from nrf.training.build import build_objective
    from nrf.training.config import load_config

    objective = build_objective(
        load_config(Path(__file__).resolve().parents[1] / "configs" / "mnist_jem.toml")
    )
    assert isinstance(objective, JEM)
    assert isinstance(objective.energy, TutorialCNNClassifier)
    assert (objective.k, objective.data_noise, objective.buffer_size) == (20, 0.03, 10000)


@pytest.mark.parametrize(("preset", "shape"), [("mnist", (1, 28, 28)), ("cifar10", (3, 32, 32)),
                                               ("imagenet32", (3, 32, 32))])  # fmt: skip
def test_resnet_energies_shapes_and_one_training_step(preset: str, shape: tuple[int, int, int]) -> None:
    from nrf.energies import ConditionalResNetEnergy, ResNetEnergy

    torch.manual_seed(0)
    small = {"channels": (8, 8)} if preset == "mnist" else {"channels": (8, 8, 16)}  # the layouts, thinner
    for conditional in (False, True):
        net = ConditionalResNetEnergy(shape, 10, preset, **small) if conditional else ResNetEnergy(
            shape, preset, **small)  # fmt: skip
        x = torch.rand(4, *shape) * 2 - 1
        assert net(x).shape == (4,)
        sampler = Langevin(step_size=1.0, noise_scale=0.005, grad_clip=0.01, clamp=(-1.0, 1.0))
        objective = IGEBM(net, sampler, k=2, noise_range=(-1.0, 1.0), buffer_size=8, conditional=conditional)

        class Step(Ctx):
            def __init__(self, optimizer: torch.optim.Optimizer) -> None:
                super().__init__()
                self.optimizer = optimizer

            def update(self, group: str, loss: torch.Tensor) -> None:
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
                self.losses.append(loss.detach())

        before = [p.detach().clone() for p in net.parameters()]
        y = torch.tensor([0, 3, 9, 1])
        metrics = objective.training_step(Batch(x, y), Step(torch.optim.Adam(net.parameters(), lr=1e-4)))
        assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
        assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    full = ResNetEnergy(shape, preset)
    expected = {"mnist": (32, 64), "cifar10": (128, 256, 256), "imagenet32": (128, 256, 512)}[preset]
    assert full.net.head.in_features == expected[-1]


@pytest.mark.parametrize("network", ["resnet", "tutorial"])
def test_conditional_energy_logits_agree_with_class_energies(network: str) -> None:
    from nrf.energies import ConditionalResNetEnergy, ConditionalTutorialCNNEnergy

    torch.manual_seed(1)
    if network == "resnet":
        net = ConditionalResNetEnergy(n_classes=4, channels=(8, 8)).eval()
        biases = [block.bias for block in net.net.blocks]
    else:
        net = ConditionalTutorialCNNEnergy(n_classes=4, hidden=8).eval()
        biases = list(net.biases)
        assert [b.shape[1] for b in biases] == [4, 8, 16, 16, 16]  # one per layer of the body
    with torch.no_grad():  # make the classes differ (gains start at 1, biases at 0)
        for bias in biases:
            bias.normal_(0, 0.5)
    x = torch.rand(3, 1, 28, 28)
    logits = net.logits(x)
    for c in range(4):
        torch.testing.assert_close(logits[:, c], -net.class_energy(x, torch.full((3,), c)))
    assert not torch.allclose(logits[:, 0], logits[:, 1])
    torch.testing.assert_close(net(x), -torch.logsumexp(logits, 1))


@pytest.mark.parametrize("negatives", ["class", "joint"])
def test_conditional_igebm_learns_to_classify_by_lowest_energy(negatives: str) -> None:
    from nrf.energies import ConditionalResNetEnergy, ConditionedEnergy

    torch.manual_seed(0)
    n = 256
    y = torch.arange(n) % 2
    x = -torch.ones(n, 1, 8, 8) + 0.05 * torch.rand(n, 1, 8, 8)
    x[y == 0, :, :, :4] += 1.5  # class 0: left half bright; class 1: right half
    x[y == 1, :, :, 4:] += 1.5
    net = ConditionalResNetEnergy((1, 8, 8), n_classes=2, channels=(8, 8), blocks=1)
    sampler = Langevin(step_size=2.0, noise_scale=0.005, grad_clip=0.05, clamp=(-1.0, 1.0))
    objective = OBJECTIVES.build({"name": "igebm-conditional", "k": 10, "noise_range": [-1.0, 1.0],
                                  "alpha": 0.1, "buffer_size": 500, "conditional_negatives": negatives},
                                 energy=net, sampler=sampler)  # fmt: skip
    assert objective.conditional
    streams = Streams.from_user_seed(0)
    loop = Loop(objective, Batch(x, y), {"energy": {"name": "adam", "lr": 3e-3, "betas": [0.0, 0.999]}},
                batch_size=32, steps=80, generator=streams.sampler(torch.device("cpu")),
                data_generator=streams.data())  # fmt: skip
    loop.run()
    assert float((net.predict(x) == y).float().mean()) >= 0.95  # the class of lowest E(x, y)
    # conditional chains follow E(., y_i): the same steps as the sampler run on ConditionedEnergy
    labels, start = torch.tensor([0, 1, 1, 0]), torch.rand(4, 1, 8, 8) * 2 - 1
    got = objective.conditional_sample(labels, torch.Generator().manual_seed(2), start=start.clone(), steps=5)
    net.eval()
    state, _ = run(sampler, BoltzmannTarget(ConditionedEnergy(net, labels)), sampler.init(start.clone()), 5,
                   generator=torch.Generator().manual_seed(2))  # fmt: skip
    torch.testing.assert_close(got, state.x)
    with pytest.raises(ValueError, match="needs labelled data"):
        objective.training_step(Batch(x[:4]), Ctx())
    with pytest.raises(ValueError, match="not 'persistent'"):
        IGEBM(net, sampler, start="persistent", conditional=True)
    with pytest.raises(TypeError, match="needs a class energy"):
        IGEBM(Quadratic(), sampler, conditional=True)


@pytest.mark.parametrize("mode", ["mean", "cycle"])
def test_historical_ensemble_samples_from_the_last_snapshots(mode: str) -> None:
    from nrf.energies import SumEnergy

    rows = torch.randn(64, 2, generator=torch.Generator().manual_seed(0)) * 0.3 + 1.0

    def objective() -> IGEBM:
        sampler = Langevin(step_size=0.05, noise_scale=0.05)
        return IGEBM(Quadratic(), sampler, k=3, noise_range=(-2.0, 2.0), buffer_size=50, ensemble=3,
                     ensemble_every=2, ensemble_mode=mode)  # fmt: skip

    straight, resumed = straight_and_resumed(objective, rows)  # 8 updates: snapshots after 4, 6, 8
    obj = straight.objective
    members = obj.ensemble_members()
    assert len(members) == 3
    assert torch.equal(members[-1].m, obj.energy.m)  # the newest snapshot is the final model
    assert not torch.equal(members[0].m, obj.energy.m)
    again = resumed.objective.ensemble_members()  # kept in checkpoints
    for a, b in zip(members, again, strict=True):
        assert torch.equal(a.m, b.m)
    got = obj.sample(5, torch.Generator().manual_seed(3), steps=6, init="noise")
    gen = torch.Generator().manual_seed(3)
    x = obj.sample_starts(5, gen, "noise")
    if mode == "mean":
        x = obj.negatives(x, gen, energy=SumEnergy(members, [1 / 3] * 3), steps=6)
    else:
        for member in members:
            x = obj.negatives(x, gen, energy=member, steps=2)
    torch.testing.assert_close(got, x)
    with pytest.raises(ValueError, match="ensemble_mode must be one of"):
        IGEBM(Quadratic(), Langevin(step_size=0.1), ensemble=2, ensemble_mode="vote")


def test_chains_evaluator_draws_chains_over_steps(tmp_path: Path) -> None:
    from nrf.training.evaluation import EVALUATORS

    class ImageQuadratic(Quadratic):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x.flatten(1))

    energy = ImageQuadratic(d=16, m=0.0)
    objective = _igebm(energy, k=2)
    objective.initialize(torch.zeros(3, 1, 4, 4))
    evaluate = EVALUATORS.build({"name": "chains", "n_chains": 3, "steps": 10, "frames": 4}, data=None)
    calls: list[int] = []
    original = objective.negatives

    def counted(*args: object, **kw: object) -> torch.Tensor:
        calls.append(int(kw["steps"]))  # type: ignore[arg-type]
        return original(*args, **kw)  # type: ignore[arg-type]

    objective.negatives = counted  # type: ignore[method-assign]
    assert evaluate(objective, 7, tmp_path, torch.Generator().manual_seed(0)) == {}
    assert calls == [2, 3, 2, 3]  # 10 steps in 4 frames
    assert (tmp_path / "plots" / "chains-step00000007.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="at least frames"):
        EVALUATORS.build({"name": "chains", "steps": 2, "frames": 4}, data=None)


def test_conditioned_energy_checks_its_labels_once() -> None:
    from nrf.energies import ConditionedEnergy, DigitClassifier

    net = DigitClassifier().eval()
    with pytest.raises(ValueError, match=r"y must lie in \[0, 9\]"):
        ConditionedEnergy(net, torch.tensor([0, 11]))
    conditioned = ConditionedEnergy(net, torch.tensor([2, 5]))
    x = torch.rand(2, 1, 28, 28)
    torch.testing.assert_close(conditioned(x), net.class_energy(x, torch.tensor([2, 5])))
    with pytest.raises(ValueError, match="holds 2 labels, got a batch of 3 rows"):
        conditioned(torch.rand(3, 1, 28, 28))


def test_joint_conditional_negatives_carry_labels_drawn_from_p_y_given_x() -> None:
    from nrf.energies import ConditionalTutorialCNNEnergy, ConditionedEnergy

    torch.manual_seed(0)
    net = ConditionalTutorialCNNEnergy((1, 8, 8), n_classes=3, hidden=4)
    x, y = torch.rand(6, 1, 8, 8) * 2 - 1, torch.tensor([0, 1, 2, 0, 1, 2])
    objective = _igebm(
        net, conditional=True, conditional_negatives="joint", k=2, start="buffer", buffer_size=100
    )
    ctx = Ctx()
    objective.event_shape = (1, 8, 8)
    gen = torch.Generator().manual_seed(0)
    starts = objective._starts(x, gen)  # what the step draws first from the same seed
    y_neg = objective.gibbs_labels(starts, gen)
    metrics = objective.training_step(Batch(x, y), ctx)
    x_neg = objective.buffer.contents(6)
    net.eval()
    with torch.no_grad():
        e_data, e_neg = ConditionedEnergy(net, y)(x), ConditionedEnergy(net, y_neg)(x_neg)
    # L_ML = mean E(x+, y+) - mean E(x-, y-), y- the chains' Gibbs labels (alpha 0, no data noise)
    assert metrics["energy_data"] == pytest.approx(float(e_data.mean()), rel=1e-5)
    assert metrics["energy_samples"] == pytest.approx(float(e_neg.mean()), rel=1e-5)
    expected = metrics["energy_data"] - metrics["energy_samples"]
    assert float(ctx.losses[0].detach()) == pytest.approx(expected, rel=1e-5)
    # Gibbs labels: frequencies of y ~ softmax(-E(x, .)) for one fixed image
    image = x[:1].expand(4000, -1, -1, -1)
    labels = objective.gibbs_labels(image, torch.Generator().manual_seed(1))
    with torch.no_grad():
        probs = torch.softmax(net.logits(x[:1]), dim=1)[0]
    freq = torch.bincount(labels, minlength=3).float() / 4000
    assert torch.all((freq - probs).abs() < 4 * (probs * (1 - probs) / 4000).sqrt() + 1e-3)
    with pytest.raises(ValueError, match="needs conditional=True"):
        _igebm(Quadratic(), conditional_negatives="joint")
    with pytest.raises(ValueError, match=r"classifier_weight=1\.0 needs conditional=True"):
        _igebm(Quadratic(), classifier_weight=1.0)
    # the cross-entropy term: L = L_ML + w CE(-E(x+, .), y+) (alpha 0)
    hybrid = _igebm(net, conditional=True, classifier_weight=0.5, k=2)
    ctx = Ctx()
    metrics = hybrid.training_step(Batch(x, y), ctx)
    with torch.no_grad():
        ce = torch.nn.functional.cross_entropy(net.logits(x), y)
    assert metrics["loss_ce"] == pytest.approx(float(ce), rel=1e-5)
    assert 0.0 <= metrics["accuracy"] <= 1.0
    expected = metrics["loss_ml"] + 0.5 * metrics["loss_ce"]
    assert float(ctx.losses[0].detach()) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="conditional_negatives"):
        _igebm(net, conditional=True, conditional_negatives="marginal")


def test_jem_generative_schedule_and_gradient_stats() -> None:
    from nrf.energies import TutorialCNNClassifier
    from nrf.objectives import JEM

    torch.manual_seed(0)
    net = TutorialCNNClassifier(hidden=8)
    sampler = Langevin(step_size=1.0, noise_scale=0.01, clamp=(-1.0, 1.0))
    objective = JEM(net, sampler, k=2, buffer_size=100, generative_start=2, generative_ramp=4,
                    gradient_stats_every=3, data_noise=0.0)  # fmt: skip
    assert [objective.generative_weight_at(t) for t in range(8)] == [0, 0, 0.25, 0.5, 0.75, 1, 1, 1]
    assert JEM(net, sampler, generative_start=5).generative_weight_at(5) == 1.0
    x, y = torch.rand(16, 1, 28, 28) * 2 - 1, torch.arange(16) % 10
    ctx = Ctx()
    metrics = objective.training_step(Batch(x, y), ctx)  # step 0: cross-entropy only, no negatives
    assert len(objective.buffer) == 0
    assert "energy_samples" not in metrics
    assert "grad_norm_ce" in metrics
    assert "grad_norm_gen" not in metrics
    ce = torch.nn.functional.cross_entropy(net.logits(x), y)
    grads = torch.autograd.grad(ce, list(net.parameters()))
    norm = float(torch.cat([g.reshape(-1) for g in grads]).norm())
    assert metrics["grad_norm_ce"] == pytest.approx(norm, rel=1e-4)
    ctx.step = 3  # weight 0.5, and a step of the statistics
    metrics = objective.training_step(Batch(x, y), ctx)
    assert len(objective.buffer) == 16
    assert metrics["generative_weight"] == 0.5
    assert metrics["grad_norm_gen"] > 0
    assert -1.0 <= metrics["grad_cosine"] <= 1.0
    expected = metrics["loss_ce"] + 0.5 * metrics["loss_ml"]
    assert float(ctx.losses[-1].detach()) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="generative_ramp"):
        JEM(net, sampler, generative_ramp=-1)
