"""Energy networks (shapes, input checks) and analytic energies (closed forms, exact samples)."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import MultivariateNormal

from nrf.energies import (
    POTENTIALS,
    ConvEnergy,
    GaussianEnergy,
    GaussianMixtureEnergy,
    MLPEnergy,
    SNGANConvEnergy,
    SNGANResNetEnergy,
    paper_potential,
)
from nrf.nn import WeightNormLinear, data_dependent_init


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


SMALL = {"sngan-res": {"width": 16}, "sngan-cnn": {"base_width": 8}, "cifar": {"widths": (8, 16)}}


# the transition presets are conditional energies E(x | context), tested in test_trajectories
@pytest.mark.parametrize("name", [n for n in POTENTIALS if not n.startswith("trajectory")])
def test_paper_potential_shapes_and_gradient(name: str) -> None:
    energy = paper_potential(name, **SMALL.get(name, {})).eval()  # eval: no power iteration
    x = torch.randn(3, *energy.event_shape, generator=_gen(), requires_grad=True)
    e = energy(x)
    assert e.shape == (3,)
    assert e.dtype == x.dtype
    (grad,) = torch.autograd.grad(e.sum(), x)
    assert grad.shape == x.shape
    assert torch.isfinite(grad).all()
    # Flattened input is accepted and gives the same energies.
    torch.testing.assert_close(energy(x.detach().reshape(3, -1)), e.detach())


def test_table_sizes() -> None:
    widths = [m.out_features for m in paper_potential("mnist").modules() if isinstance(m, WeightNormLinear)]
    assert widths == [1000, 500, 250, 250, 250, 1]
    widths = [m.in_features for m in paper_potential("kdd").modules() if isinstance(m, WeightNormLinear)]
    assert widths == [118, 60, 30, 10]
    gmm = paper_potential("gmm")
    assert [m.out_features for m in gmm.modules() if isinstance(m, WeightNormLinear)] == [100, 100, 1]
    assert gmm.net[1].negative_slope == pytest.approx(0.2)


def test_wrong_input_shape_names_both_shapes() -> None:
    energy = paper_potential("gmm")
    with pytest.raises(ValueError, match=r"\(batch, 2\).*got \(4, 3\)"):
        energy(torch.randn(4, 3))
    conv = ConvEnergy((3, 32, 32), widths=(4, 8))
    with pytest.raises(ValueError, match=r"got \(2, 1, 32, 32\)"):
        conv(torch.randn(2, 1, 32, 32))


def test_mlp_potential_ddi_on_data() -> None:
    energy = MLPEnergy((5,), hidden=(16, 16), activation="tanh")
    x = torch.randn(256, 5, generator=_gen(1)) * 3 + 2
    data_dependent_init(energy, x)
    with torch.no_grad():
        e = energy(x)
    assert abs(float(e.mean())) < 1e-3
    assert float(e.std(unbiased=False)) == pytest.approx(1.0, abs=1e-3)


def test_fixed_hidden_scales_option() -> None:
    energy = MLPEnergy((2,), hidden=(8, 8), scale_trainable=False)
    layers = [m for m in energy.modules() if isinstance(m, WeightNormLinear)]
    assert [layer.g.requires_grad for layer in layers] == [False, False, True]


@pytest.mark.parametrize("norm", ["spectral", "none"])
def test_mlp_other_norms(norm: str) -> None:
    energy = MLPEnergy((4,), hidden=(8,), norm=norm)
    assert energy(torch.randn(6, 4)).shape == (6,)


def test_image_energies_accept_other_sizes() -> None:
    assert SNGANConvEnergy((1, 16, 16), base_width=4)(torch.randn(2, 1, 16, 16)).shape == (2,)
    assert SNGANResNetEnergy((1, 16, 16), width=8)(torch.randn(2, 1, 16, 16)).shape == (2,)
    assert ConvEnergy((1, 28, 28), widths=(4, 8))(torch.randn(2, 1, 28, 28)).shape == (2,)
    with pytest.raises(ValueError, match="divisible by 8"):
        SNGANConvEnergy((3, 20, 20))


def test_spectral_norm_bounds_layer_gain() -> None:
    energy = SNGANConvEnergy((3, 32, 32), base_width=8)
    energy.train()
    x = torch.randn(4, 3, 32, 32)
    for _ in range(20):  # power iterations converge during training-mode forwards
        energy(x)
    energy.eval()
    sigma = torch.linalg.matrix_norm(energy.head.weight.detach(), ord=2)
    assert float(sigma) == pytest.approx(1.0, abs=0.05)


def _random_spd(d: int, gen: torch.Generator) -> torch.Tensor:
    a = torch.randn(d, d, generator=gen, dtype=torch.float64)
    return a @ a.T + 0.5 * torch.eye(d, dtype=torch.float64)


def test_gaussian_matches_closed_form() -> None:
    gen = _gen(2)
    mean = torch.randn(4, generator=gen, dtype=torch.float64)
    cov = _random_spd(4, gen)
    energy = GaussianEnergy(mean, cov)
    x = torch.randn(50, 4, generator=gen, dtype=torch.float64)
    ref = MultivariateNormal(mean, cov)
    torch.testing.assert_close(energy.log_prob(x), ref.log_prob(x))
    torch.testing.assert_close(energy(x), -ref.log_prob(x))
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(energy.log_prob(xg).sum(), xg)
    torch.testing.assert_close(energy.score(x), grad)


def test_gaussian_exact_samples_moments() -> None:
    gen = _gen(3)
    cov = _random_spd(3, gen)
    energy = GaussianEnergy(torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64), cov)
    n = 40_000
    s = energy.sample(n, _gen(4))
    se_mean = torch.sqrt(torch.diagonal(cov) / n)
    assert ((s.mean(0) - energy.mean).abs() < 4 * se_mean).all()
    emp = torch.cov(s.T)
    # standard error of a covariance entry: sqrt((S_ii S_jj + S_ij^2) / n)
    se_cov = torch.sqrt((torch.outer(torch.diagonal(cov), torch.diagonal(cov)) + cov**2) / n)
    assert ((emp - cov).abs() < 4 * se_cov).all()
    # Same generator seed -> same samples.
    torch.testing.assert_close(energy.sample(5, _gen(9)), energy.sample(5, _gen(9)))


def test_gaussian_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="covariance must have shape"):
        GaussianEnergy(torch.zeros(2), torch.eye(3))
    with pytest.raises(ValueError, match="positive definite"):
        GaussianEnergy(torch.zeros(2), torch.tensor([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match="symmetric"):
        GaussianEnergy(torch.zeros(2), torch.tensor([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="mean must be finite"):
        GaussianEnergy(torch.tensor([0.0, float("nan")]), torch.eye(2))
    with pytest.raises(ValueError, match="n must be"):
        GaussianEnergy(torch.zeros(2), torch.eye(2)).sample(0)


def test_mixture_matches_closed_form() -> None:
    gen = _gen(5)
    means = torch.randn(3, 2, generator=gen, dtype=torch.float64) * 3
    covs = torch.stack([_random_spd(2, gen) for _ in range(3)])
    weights = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    mix = GaussianMixtureEnergy(means, covs, weights)
    x = torch.randn(40, 2, generator=gen, dtype=torch.float64) * 3
    comps = torch.stack([MultivariateNormal(means[k], covs[k]).log_prob(x) for k in range(3)], dim=1)
    expected = torch.logsumexp(comps + weights.log(), dim=1)
    torch.testing.assert_close(mix.log_prob(x), expected)
    torch.testing.assert_close(mix.responsibilities(x).sum(1), torch.ones(40, dtype=torch.float64))


def test_mixture_isotropic_std_and_weights_of_samples() -> None:
    means = torch.tensor([[-4.0, 0.0], [4.0, 0.0]])
    mix = GaussianMixtureEnergy(means, 0.5, weights=[1.0, 3.0])
    x, labels = mix.sample(20_000, _gen(6), return_labels=True)
    p = 0.25
    frac = float((labels == 0).float().mean())
    assert abs(frac - p) < 4 * math.sqrt(p * (1 - p) / 20_000)
    assert float(x[labels == 0].std(0).mean()) == pytest.approx(0.5, rel=0.03)
    # Normalized density: integrates to 1 on a fine 1-D slice of a 1-D mixture.
    one_d = GaussianMixtureEnergy(torch.tensor([[-1.0], [2.0]]), torch.tensor([0.3, 0.7]))
    grid = torch.linspace(-8, 10, 20_001).unsqueeze(1)
    integral = torch.trapezoid(one_d.log_prob(grid).exp(), grid.squeeze(1))
    assert float(integral) == pytest.approx(1.0, abs=1e-4)


def test_mixture_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="weights must be"):
        GaussianMixtureEnergy(torch.zeros(2, 1), 1.0, weights=[1.0, -1.0])
    with pytest.raises(ValueError, match="means must have shape"):
        GaussianMixtureEnergy(torch.zeros(2), 1.0)
    with pytest.raises(ValueError, match="standard deviations must be > 0"):
        GaussianMixtureEnergy(torch.zeros(2, 1), 0.0)
