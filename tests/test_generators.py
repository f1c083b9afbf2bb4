"""Auxiliary generators: shapes, the joint density q(x, h), sampling, sigma handling."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal

from nrf.generators import GENERATORS, DeconvGenerator, MLPGenerator, paper_generator
from nrf.nn import WeightNormConvTranspose2d, WeightNormLinear

SMALL = {"cifar": {"widths": (16, 8, 4)}, "sngan-cnn": {"base_width": 16}, "sngan-res": {"width": 8}}


@pytest.mark.parametrize("name", GENERATORS)
def test_paper_generator_shapes(name: str) -> None:
    gen = paper_generator(name, **SMALL.get(name, {}))
    x, h = gen.sample(4, torch.Generator().manual_seed(0))
    assert h.shape == (4, gen.latent_dim)
    assert x.shape == (4, *gen.event_shape)
    assert torch.isfinite(x).all()


def test_output_ranges_and_layers() -> None:
    mnist = paper_generator("mnist")
    x = mnist.sample(8)[0].detach()
    assert float(x.min()) >= 0.0
    assert float(x.max()) <= 1.0
    cifar = paper_generator("cifar", widths=(16, 8, 4))
    y = cifar.sample(3)[0].detach()
    assert float(y.abs().max()) <= 1.0
    assert any(isinstance(m, WeightNormConvTranspose2d) for m in cifar.modules())
    kdd = paper_generator("kdd")
    assert [m.out_features for m in kdd.modules() if isinstance(m, torch.nn.Linear)] == [10, 30, 60]
    assert [m.out_features for m in kdd.modules() if isinstance(m, WeightNormLinear)] == [118]


def test_sampling_is_deterministic_for_a_generator() -> None:
    gen = MLPGenerator(3, 2, hidden=(8,), sigma=0.3)
    gen.eval()
    a = gen.sample(5, torch.Generator().manual_seed(7))
    b = gen.sample(5, torch.Generator().manual_seed(7))
    torch.testing.assert_close(a, b)


def test_joint_log_prob_matches_closed_form() -> None:
    gen = MLPGenerator(3, 4, hidden=(8,), sigma=0.4, batch_norm=False)
    h = torch.randn(6, 3)
    x = torch.randn(6, 4)
    with torch.no_grad():
        mean = gen(h)
    expected = Normal(0.0, 1.0).log_prob(h).sum(1) + Normal(mean, 0.4).log_prob(x).sum(1)
    torch.testing.assert_close(gen.log_prob(x, h), expected)


def test_conditional_noise_level() -> None:
    gen = MLPGenerator(2, 2, hidden=(4,), sigma=0.25, batch_norm=False)
    torch.manual_seed(0)
    h = torch.zeros(20_000, 2)
    with torch.no_grad():
        mean = gen(h)
        eps = torch.randn(mean.shape, generator=torch.Generator().manual_seed(1))
        x = mean + gen.sigma * eps
    assert float((x - mean).std()) == pytest.approx(0.25, rel=0.02)


def test_learned_sigma_gets_gradient() -> None:
    gen = MLPGenerator(2, 3, hidden=(4,), sigma=0.5, learn_sigma=True, batch_norm=False)
    assert float(gen.sigma.detach()) == pytest.approx(0.5)
    x, h = gen.sample(16)
    gen.log_prob(x.detach(), h).sum().backward()
    assert gen.log_sigma.grad is not None
    with pytest.raises(ValueError, match="sigma is learned"):
        gen.set_sigma(0.1)


def test_zero_sigma_is_deterministic_and_has_no_density() -> None:
    gen = MLPGenerator(2, 2, hidden=(4,), batch_norm=False)
    x, h = gen.sample(4)
    with torch.no_grad():
        torch.testing.assert_close(x, gen(h))
    with pytest.raises(ValueError, match="sigma > 0"):
        gen.log_prob(x, h)
    gen.set_sigma(0.2)
    assert torch.isfinite(gen.log_prob(x, h)).all()


def test_latent_log_prob() -> None:
    gen = MLPGenerator(5, 1, hidden=(4,))
    h = torch.zeros(1, 5)
    assert float(gen.latent_log_prob(h)) == pytest.approx(-2.5 * math.log(2 * math.pi))


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="sigma"):
        MLPGenerator(2, 2, sigma=-1.0)
    with pytest.raises(ValueError, match="sigma"):
        MLPGenerator(2, 2, sigma=0.0, learn_sigma=True)
    with pytest.raises(ValueError, match="latent_dim"):
        MLPGenerator(0, 2)
    with pytest.raises(ValueError, match=r"h must have shape \(batch, 2\)"):
        MLPGenerator(2, 2)(torch.randn(3, 5))
    with pytest.raises(ValueError, match="widths must list 3"):
        DeconvGenerator(10, (3, 32, 32), widths=(8, 4))
