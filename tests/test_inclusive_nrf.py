"""Inclusive-NRF (Algorithm 1): the update directions on a case with a closed form."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nrf.data import Batch
from nrf.generators import MLPGenerator
from nrf.objectives import InclusiveNRF
from nrf.samplers import Langevin


class Quadratic(nn.Module):
    """E(x) = a/2 |x - m|^2 with learnable m."""

    def __init__(self, a: float) -> None:
        super().__init__()
        self.m = nn.Parameter(torch.tensor([0.3, -0.2]))
        self.a = a
        self.event_shape = (2,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * self.a * (x - self.m).pow(2).sum(1)


class RecordingContext:
    """Records each group's gradient instead of stepping an optimizer."""

    def __init__(self, objective: InclusiveNRF, seed: int = 0) -> None:
        self.generator = torch.Generator().manual_seed(seed)
        self.step = 0
        self.groups = objective.optimizer_groups()
        self.grads: dict[str, list[torch.Tensor]] = {}

    def update(self, group: str, loss: torch.Tensor) -> None:
        self.grads[group] = list(torch.autograd.grad(loss, self.groups[group]))


def _linear_generator(sigma: float) -> MLPGenerator:
    gen = MLPGenerator(2, 2, hidden=(), batch_norm=False, output_norm="none", sigma=sigma)
    with torch.no_grad():
        gen.net[0].weight.copy_(torch.tensor([[1.0, 0.5], [0.0, 2.0]]))
        gen.net[0].bias.copy_(torch.tensor([1.0, -1.0]))
    return gen


def test_updates_without_revision_have_the_closed_form() -> None:
    energy, gen = Quadratic(a=2.0), _linear_generator(sigma=0.5)
    objective = InclusiveNRF(energy, gen, Langevin(0.01), steps=0)
    data = torch.randn(64, 2, generator=torch.Generator().manual_seed(1)) + 3.0
    ctx = RecordingContext(objective)
    objective.training_step(Batch(data), ctx)
    # The same draw of (x', h') the objective made:
    x, h = gen.sample(64, torch.Generator().manual_seed(0))
    # d/dm [mean E(data) - mean E(x)] = a (mean x - mean data): m moves toward the data.
    (grad_m,) = ctx.grads["energy"]
    torch.testing.assert_close(grad_m, 2.0 * (x.mean(0) - data.mean(0)))
    # d/db [-mean log q(x, h)] = -mean(x - W h - b) / sigma^2.
    grad_w, grad_b = ctx.grads["generator"]
    resid = x - h @ gen.net[0].weight.T - gen.net[0].bias
    torch.testing.assert_close(grad_b, -resid.mean(0) / 0.25)
    torch.testing.assert_close(grad_w, -(resid.T @ h) / 64 / 0.25)


def test_potential_control_term() -> None:
    energy, gen = Quadratic(a=1.0), _linear_generator(sigma=0.5)
    objective = InclusiveNRF(energy, gen, Langevin(0.01), steps=0, alpha_p=0.7)
    data = torch.randn(32, 2, generator=torch.Generator().manual_seed(2))
    ctx = RecordingContext(objective)
    objective.training_step(Batch(data), ctx)
    x, _ = gen.sample(32, torch.Generator().manual_seed(0))
    e_data = 0.5 * (data - energy.m.detach()).pow(2).sum(1)
    # d/dm alpha mean E^2 = alpha mean 2 E dE/dm, dE/dm = -(x - m)
    control = 0.7 * (2 * e_data.unsqueeze(1) * -(data - energy.m.detach())).mean(0)
    torch.testing.assert_close(ctx.grads["energy"][0], x.mean(0) - data.mean(0) + control)
    # control="both" adds alpha mean E(x)^2 of the (here unrevised) samples
    both = InclusiveNRF(energy, gen, Langevin(0.01), steps=0, alpha_p=0.7, control="both")
    ctx = RecordingContext(both)
    both.training_step(Batch(data), ctx)
    e_x = 0.5 * (x - energy.m.detach()).pow(2).sum(1)
    control_x = 0.7 * (2 * e_x.unsqueeze(1) * -(x - energy.m.detach())).mean(0)
    torch.testing.assert_close(ctx.grads["energy"][0], x.mean(0) - data.mean(0) + control + control_x)


@pytest.mark.parametrize("revision", ["paper", "x-only"])
def test_revision_moves_samples_toward_low_energy(revision: str) -> None:
    energy, gen = Quadratic(a=4.0), _linear_generator(sigma=0.5 if revision == "paper" else 0.0)
    objective = InclusiveNRF(energy, gen, Langevin(0.02, noise_scale=0.0), steps=20, revision=revision)
    x0, h0 = objective.generate(256, torch.Generator().manual_seed(3))
    x, h = objective.revise(x0, h0, torch.Generator().manual_seed(4))
    assert float(energy(x).detach().mean()) < 0.5 * float(energy(x0).detach().mean())
    if revision == "x-only":
        torch.testing.assert_close(h, h0)
    else:
        assert not torch.equal(h, h0)


def test_paper_revision_requires_sigma() -> None:
    with pytest.raises(ValueError, match="sigma > 0"):
        InclusiveNRF(Quadratic(1.0), _linear_generator(0.0), Langevin(0.01), revision="paper")


def test_interpolation_end_points() -> None:
    gen = _linear_generator(0.1)
    objective = InclusiveNRF(Quadratic(1.0), gen, Langevin(0.01))
    h1, h2 = torch.zeros(2), torch.ones(2)
    path = objective.interpolate(h1, h2, n=5)
    assert path.shape == (5, 2)
    with torch.no_grad():
        torch.testing.assert_close(path[0], gen(h1.unsqueeze(0))[0])
        torch.testing.assert_close(path[-1], gen(h2.unsqueeze(0))[0])
        torch.testing.assert_close(path[2], gen(torch.full((1, 2), 0.5))[0])
