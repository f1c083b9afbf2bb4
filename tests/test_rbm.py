"""RBM energies: free energy, conditionals, centering and the exact partition function
against enumeration."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from nrf.energies import RBM


def _rbm(visible: str, n_visible: int = 4, n_hidden: int = 3, seed: int = 0) -> RBM:
    g = torch.Generator().manual_seed(seed)
    rbm = RBM(n_visible, n_hidden, visible, weight_std=0.7, generator=g).double()
    with torch.no_grad():
        rbm.visible_bias.copy_(torch.randn(n_visible, generator=g))
        rbm.hidden_bias.copy_(torch.randn(n_hidden, generator=g))
        if visible == "gaussian":
            rbm.log_var.copy_(0.3 * torch.randn(n_visible, generator=g))
    return rbm


def _hidden_states(n: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=torch.float64)


def _rows(visible: str, n: int, d: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    if visible == "gaussian":
        return torch.randn(n, d, generator=g, dtype=torch.float64)
    return torch.bernoulli(torch.full((n, d), 0.5, dtype=torch.float64), generator=g)


@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("centred", [False, True])
def test_free_energy_and_hidden_conditional_match_enumeration(visible: str, centred: bool) -> None:
    rbm = _rbm(visible)
    if centred:
        rbm.set_offsets(
            torch.full((4,), 0.3, dtype=torch.float64), torch.full((3,), 0.6, dtype=torch.float64)
        )
    v = _rows(visible, 7, 4)
    hs = _hidden_states(3)
    joint = torch.stack([rbm.joint_energy(v, h.expand(7, 3)) for h in hs], 1)  # (7, 8)
    torch.testing.assert_close(rbm(v), -torch.logsumexp(-joint, 1))
    posterior = torch.softmax(-joint, 1)
    torch.testing.assert_close(rbm.hidden_probs(v), posterior @ hs)
    beta = torch.tensor([0.5, 1.0, 2.0, 0.1, 1.0, 3.0, 0.7], dtype=torch.float64)
    tempered = torch.softmax(-beta[:, None] * joint, 1)
    torch.testing.assert_close(rbm.hidden_probs(v, beta), tempered @ hs)


def test_bernoulli_visible_conditional_and_exact_log_partition() -> None:
    rbm = _rbm("bernoulli")
    rbm.set_offsets(torch.full((4,), 0.2, dtype=torch.float64), torch.full((3,), 0.5, dtype=torch.float64))
    vs, hs = _hidden_states(4), _hidden_states(3)
    torch.testing.assert_close(rbm.log_partition(), torch.logsumexp(-rbm(vs), 0))
    h = hs[5:6]
    joint = rbm.joint_energy(vs, h.expand(16, 3))
    p = torch.softmax(-joint, 0)
    torch.testing.assert_close(rbm.visible_mean(h)[0], p @ vs)
    torch.testing.assert_close(rbm.visible_mean(h, 2.0)[0], torch.softmax(-2 * joint, 0) @ vs)


def test_gaussian_visible_conditional_and_log_partition() -> None:
    rbm = _rbm("gaussian")
    h = _hidden_states(3)
    g = torch.Generator().manual_seed(2)
    draws = torch.stack([rbm.sample_visible(h, 0.5, generator=g) for _ in range(4000)])  # (4000, 8, 4)
    mean, var = rbm.visible_input(h), rbm.variance / 0.5
    se = (var / 4000).sqrt()
    assert ((draws.mean(0) - mean).abs() < 5 * se).all()
    assert ((draws.var(0) / var - 1).abs() < 0.15).all()
    # log Z by importance sampling with a wide Gaussian proposal, against the closed form
    q = torch.distributions.Normal(
        torch.zeros(4, dtype=torch.float64), torch.full((4,), 3.0, dtype=torch.float64)
    )
    x = q.sample(torch.Size([400_000]))
    with torch.no_grad():
        log_w = -rbm(x) - q.log_prob(x).sum(-1)
        estimate = torch.logsumexp(log_w, 0) - math.log(x.shape[0])
        assert abs(float(estimate - rbm.log_partition())) < 0.02


@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_moving_the_offsets_keeps_the_distribution(visible: str) -> None:
    rbm = _rbm(visible)
    v = _rows(visible, 6, 4)
    before = -rbm(v) - rbm.log_partition()
    rbm.set_offsets(torch.rand(4, dtype=torch.float64), torch.rand(3, dtype=torch.float64))
    torch.testing.assert_close(-rbm(v) - rbm.log_partition(), before)


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="visible"):
        RBM(3, 2, "poisson")
    with pytest.raises(ValueError, match="n_hidden"):
        RBM(3, 0)
    rbm = RBM(3, 25)
    with pytest.raises(ValueError, match=r"n_hidden = 25 > max_hidden = 20"):
        rbm.log_partition()
    with pytest.raises(ValueError, match="beta has 2 entries for 3 rows"):
        rbm.hidden_probs(torch.zeros(3, 3), torch.ones(2))
    with pytest.raises(ValueError, match=r"expects input of shape \(batch, 3\)"):
        rbm(torch.zeros(2, 4))


def test_image_shaped_rbm_takes_images_and_returns_them() -> None:
    from nrf.energies import paper_potential

    rbm = paper_potential("rbm", n_hidden=16)
    assert (rbm.n_visible, rbm.event_shape) == (784, (1, 28, 28))
    v = torch.bernoulli(torch.full((3, 1, 28, 28), 0.3), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(rbm(v), rbm(v.flatten(1)))
    h = rbm.sample_hidden(v, generator=torch.Generator().manual_seed(1))
    assert rbm.sample_visible(h, generator=torch.Generator().manual_seed(2)).shape == (3, 1, 28, 28)
    assert rbm.visible_mean(h).shape == (3, 1, 28, 28)
    assert paper_potential("rbm", n_visible=2, n_hidden=10, visible="gaussian").event_shape == (2,)
    with pytest.raises(ValueError, match=r"event_shape \(1, 5, 5\) holds 25 values, n_visible = 784"):
        RBM(784, 10, event_shape=(1, 5, 5))


def test_binary_image_scales() -> None:
    from nrf.training.data import _scale_images

    images = np.array([[[0, 100, 128, 255]]], dtype=np.uint8)
    np.testing.assert_array_equal(_scale_images(images, 255.0, "binary"), [[[0.0, 0.0, 1.0, 1.0]]])
    many = np.full((2000, 1, 1), 64, dtype=np.uint8)
    a = _scale_images(many, 255.0, "binary-stochastic", seed=3)
    assert set(np.unique(a)) <= {0.0, 1.0}
    assert abs(a.mean() - 64 / 255) < 4 * np.sqrt(0.25 * 0.75 / 2000)
    np.testing.assert_array_equal(a, _scale_images(many, 255.0, "binary-stochastic", seed=3))
    from nrf.registry import ConfigError
    from nrf.training.config import Config, DataSection, validate

    with pytest.raises(ConfigError, match=r"data.scale: expected one of \['unit', .*'binary-stochastic'\]"):
        validate(Config(data=DataSection(name="mnist", scale="bin")))


def test_one_call_on_both_batches_equals_two_calls() -> None:
    from nrf.data.batch import Batch
    from nrf.energies import MLPEnergy
    from nrf.objectives.base import paired_energies

    gen = torch.Generator().manual_seed(3)
    rbm = RBM(6, 4, weight_std=0.5, generator=gen)
    rbm.set_offsets(visible=torch.full((6,), 0.3), hidden=torch.full((4,), 0.5))
    a, b = torch.rand(5, 6, generator=gen).round(), torch.rand(3, 6, generator=gen).round()
    joint = paired_energies(rbm, a, b)
    torch.testing.assert_close(joint[0], rbm(a))
    torch.testing.assert_close(joint[1], rbm(b))
    calls: list[int] = []
    mlp = MLPEnergy(6, hidden=(4,))  # rows_independent is False: scored batch by batch
    mlp.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    paired_energies(mlp, a, b)
    assert calls == [5, 3]
    x = torch.arange(12.0).reshape(6, 2)
    batch = Batch(x, torch.arange(6))
    assert batch.select(torch.tensor([4, 1])).y.tolist() == [4, 1]
    assert batch.select(torch.tensor([True, False] * 3)).x[:, 0].tolist() == [0.0, 4.0, 8.0]
