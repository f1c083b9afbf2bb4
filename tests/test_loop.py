"""The one training loop and the contracts around it: batches with labels, ensembles,
schedules, exact continuation, the registry of objectives, target factories, composition."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from nrf.data import Batch
from nrf.energies import GaussianEnergy, MLPEnergy, SumEnergy, TemperedEnergy, paper_potential
from nrf.generators import paper_generator
from nrf.objectives import OBJECTIVES, ContrastiveDivergence, InclusiveNRF, Objective, StepContext
from nrf.registry import ConfigError
from nrf.samplers import Langevin
from nrf.targets import BoltzmannTarget, ProductOfExperts
from nrf.training.loop import (
    LR_SCHEDULES,
    CosineLR,
    EpochHistory,
    ExponentialLR,
    Loop,
    build_optimizer,
)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _loop(objective: Objective, data: Batch, steps: int, **kwargs: Any) -> Loop:
    options: dict[str, Any] = {
        "batch_size": 16,
        "steps": steps,
        "generator": _gen(1),
        "data_generator": _gen(2),
    }
    options.update(kwargs)
    optim = options.pop("optim", {g: {"name": "adam", "lr": 1e-2} for g in objective.optimizer_groups()})
    return Loop(objective, data, optim, **options)


class LabelRecorder(ContrastiveDivergence):
    """CD that records the labels of every batch it sees."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def training_step(self, batch: Batch, ctx: StepContext) -> dict[str, float]:
        assert batch.y is not None
        self.seen.append((batch.x.clone(), batch.y.clone()))
        return super().training_step(batch, ctx)


def test_batches_carry_labels_to_the_objective() -> None:
    x = torch.randn(40, 2, generator=_gen(0))
    y = torch.arange(40)
    objective = LabelRecorder(MLPEnergy(2, hidden=(8,)), Langevin(0.01, noise_scale=0.0), 2)
    _loop(objective, Batch(x, y), steps=5).run()
    assert len(objective.seen) == 5
    for xb, yb in objective.seen:
        torch.testing.assert_close(xb, x[yb])  # each label travels with its own row
    with pytest.raises(ValueError, match=r"Batch\.y must have one entry per row of x \(40\)"):
        Batch(x, torch.arange(39))


def test_ensemble_members_train_as_if_alone() -> None:
    """Two members trained as one network equal each member trained alone (SGD, full batch,
    noiseless sampler: the only difference left is the order of float sums)."""
    data = torch.randn(32, 2, generator=_gen(3)) * 2
    batched = paper_potential("gmm", 2, hidden=(8,))
    singles = [batched.model(s) for s in range(2)]
    sampler = Langevin(0.05, noise_scale=0.0)
    sgd = {"energy": {"name": "sgd", "lr": 0.05}}
    _loop(ContrastiveDivergence(batched, sampler, 3), Batch(data), steps=6, batch_size=32, optim=sgd).run()
    for s, single in enumerate(singles):
        _loop(ContrastiveDivergence(single, sampler, 3), Batch(data), steps=6, batch_size=32, optim=sgd).run()
        member = batched.model(s)
        for a, b in zip(member.parameters(), single.parameters(), strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(batched.model(0)(data), batched.model(1)(data))


def test_state_and_restore_continue_bit_for_bit() -> None:
    """Six iterations straight = three, a checkpoint, a new loop restored, three more:
    parameters, optimizer moments, the parameter average, the schedule and the data order."""
    x = torch.randn(50, 2, generator=_gen(4))

    def fresh() -> Loop:
        torch.manual_seed(0)
        energy, generator = paper_potential("gmm", hidden=(8,)), paper_generator("gmm", hidden=(8,))
        objective = InclusiveNRF(energy, generator, Langevin(0.01, noise_scale=0.01), 3, revision="x-only")
        return _loop(objective, Batch(x), steps=6, ema=0.9, lr_schedule="cosine")

    straight = fresh()
    straight.initialize(torch.arange(50))
    straight.run()
    first = fresh()
    first.initialize(torch.arange(50))
    first.run(until=3)
    tensors, meta = first.state()
    rng, extra = first.sampler_state()
    second = fresh()
    second.restore(tensors, meta)
    second.restore_sampler_state(rng, extra)
    second.run()
    assert second.step == straight.step == 6
    for a, b in zip(
        straight.objective.state_dict().values(), second.objective.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert straight.average is not None
    assert second.average is not None
    for a, b in zip(straight.average.average, second.average.average, strict=True):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_learning_rate_schedules() -> None:
    cosine = CosineLR()
    assert [cosine.factor(t, 10, 5) for t in (0, 5, 10)] == pytest.approx([1.0, 0.5, 0.0], abs=1e-12)
    decay = ExponentialLR(0.97)
    assert [decay.factor(t, 100, 10) for t in (0, 9, 10, 25)] == pytest.approx([1.0, 1.0, 0.97, 0.97**2])
    assert ExponentialLR(0.5, every="step").factor(3, 10, 5) == 0.125
    assert LR_SCHEDULES.build({"name": "exponential", "gamma": 0.9}).to_config() == {
        "name": "exponential", "gamma": 0.9, "every": "epoch",
    }  # fmt: skip
    with pytest.raises(ConfigError, match="gamma must be in"):
        LR_SCHEDULES.build({"name": "exponential", "gamma": 1.5})
    power = LR_SCHEDULES.build({"name": "power", "power": 2.0, "scale": 0.25})
    assert [power.factor(t, 100, 10) for t in (0, 25, 75)] == pytest.approx([1.0, 0.25, 1 / 16])
    assert power.to_config() == {"name": "power", "power": 2.0, "scale": 0.25}
    with pytest.raises(ConfigError, match="scale must be a finite number > 0"):
        LR_SCHEDULES.build({"name": "power", "scale": 0})
    steps = LR_SCHEDULES.build({"name": "multistep", "milestones": [2, 4], "gamma": 0.1})
    assert [steps.factor(t, 100, 10) for t in (0, 19, 20, 39, 40, 99)] == pytest.approx(
        [1.0, 1.0, 0.1, 0.1, 0.01, 0.01]
    )
    assert steps.to_config() == {"name": "multistep", "milestones": [2, 4], "gamma": 0.1, "every": "epoch"}
    by_step = LR_SCHEDULES.build({"name": "multistep", "milestones": [3], "every": "step"})
    assert by_step.factor(3, 9, 9) == 0.1
    for bad, match in (([], "non-empty"), ([3, 2], "strictly increasing"), ([0], "integers >= 1")):
        with pytest.raises(ConfigError, match=match):
            LR_SCHEDULES.build({"name": "multistep", "milestones": bad})
    x = torch.randn(40, 2, generator=_gen(5))
    objective = ContrastiveDivergence(MLPEnergy(2, hidden=(4,)), Langevin(0.01), 1)
    loop = _loop(
        objective, Batch(x), steps=8, batch_size=10, lr_schedule={"name": "exponential", "gamma": 0.5}
    )
    history = EpochHistory()
    loop.run([history])
    loop.apply_lr()
    assert loop.optimizers["energy"].param_groups[0]["lr"] == pytest.approx(1e-2 * 0.5**2)  # 2 epochs done
    assert len(history.epochs) == 2


def test_optimizers_by_name() -> None:
    params = [torch.nn.Parameter(torch.zeros(3))]
    assert isinstance(build_optimizer({"name": "rmsprop", "lr": 0.1}, params), torch.optim.RMSprop)
    assert isinstance(build_optimizer("adamw", params), torch.optim.AdamW)
    sgd = build_optimizer({"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True}, params)
    assert sgd.defaults["nesterov"] is True
    with pytest.raises(ConfigError, match=r"optim\.energy\.alpha: not an argument of adam"):
        build_optimizer({"name": "adam", "alpha": 0.9}, params, key="optim.energy")
    with pytest.raises(ConfigError, match=r"optim\.energy\.lr: expected float"):
        build_optimizer({"name": "adam", "lr": "fast"}, params, key="optim.energy")


@pytest.mark.parametrize(
    ("spec", "needs"),
    [
        (
            {
                "name": "cd",
                "k": 3,
                "start": "buffer",
                "alpha": 0.1,
                "buffer_size": 50,
                "noise_range": [-2, 2],
            },
            (),
        ),
        ({"name": "inclusive", "steps": 4, "revision": "x-only", "alpha_p": 0.5, "control": "both"}, ("g",)),
        ({"name": "exclusive", "entropy_weight": 0.02}, ("g",)),
        ({"name": "gan"}, ("g",)),
        ({"name": "wgan-gp", "lam": 5.0, "n_critic": 2}, ("g",)),
    ],
)
def test_objectives_round_trip_through_the_registry(spec: dict[str, Any], needs: tuple[str, ...]) -> None:
    context = {"energy": paper_potential("gmm", hidden=(4,)), "sampler": Langevin(0.01)}
    if needs:
        context["generator"] = paper_generator("gmm", hidden=(4,))
    objective = OBJECTIVES.build(spec, **context)
    config = objective.to_config()
    assert {k: v for k, v in config.items() if k in spec} == {
        **spec,
        **({"noise_range": [-2.0, 2.0]} if "noise_range" in spec else {}),
    }
    assert Objective.from_config(config, **context).to_config() == config
    with pytest.raises(ConfigError, match="not an argument of"):
        OBJECTIVES.build({**spec, "bogus": 1}, **context)


def test_contrastive_divergence_takes_a_target_factory() -> None:
    """Negatives follow the target the factory builds: at temperature 4 the chains spread
    further than at 1."""
    energy = GaussianEnergy(torch.zeros(2), torch.eye(2))
    start = torch.zeros(2000, 2)
    plain = ContrastiveDivergence(energy, Langevin(0.05), 200)
    hot = ContrastiveDivergence(
        energy, Langevin(0.05), 200, target=lambda e: BoltzmannTarget(e, temperature=4.0)
    )
    var_plain = float(plain.negatives(start, _gen(6)).var(0).mean())
    var_hot = float(hot.negatives(start, _gen(6)).var(0).mean())
    assert var_plain == pytest.approx(1.0, rel=0.15)
    assert var_hot == pytest.approx(4.0, rel=0.15)


def test_energy_composition() -> None:
    a = GaussianEnergy(torch.zeros(2), torch.eye(2))
    b = GaussianEnergy(torch.ones(2), 2 * torch.eye(2))
    x = torch.randn(5, 2, generator=_gen(7))
    torch.testing.assert_close(SumEnergy([a, b], [1.0, 0.5])(x), a(x) + 0.5 * b(x))
    torch.testing.assert_close(TemperedEnergy(a, 3.0)(x), a(x) / 3.0)
    poe = ProductOfExperts([a, b], [1.0, 0.5])
    torch.testing.assert_close(poe.log_prob((x,)), -(a(x) + 0.5 * b(x)))
    assert SumEnergy([a, b]).event_shape == (2,)
    with pytest.raises(ValueError, match="weights must have 2 entries"):
        SumEnergy([a, b], [1.0])
    with pytest.raises(ValueError, match="temperature must be"):
        TemperedEnergy(a, -1.0)
    assert math.isfinite(float(TemperedEnergy(a, 1.0)(x).sum()))
