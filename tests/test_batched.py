"""Batched networks (several seeds as one model) equal their single-model slices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nrf.cli.main import main
from nrf.energies import BatchedMLPEnergy, paper_potential
from nrf.generators import BatchedMLPGenerator, paper_generator
from nrf.nn import data_dependent_init
from nrf.nn.batched import BatchedBatchNorm1d, BatchedWeightNormLinear
from nrf.training.config import load_config
from nrf.training.run import train
from training_helpers import write_config


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_batched_energy_slices_equal_single_models_and_init_per_model() -> None:
    energy = BatchedMLPEnergy(4, (2,), hidden=(16, 16))
    x = torch.randn(4 * 64, 2, generator=_gen(0)) * torch.tensor([1.0, 3.0]) + 2
    data_dependent_init(energy, x)
    out = energy(x)
    for s in range(4):
        rows = slice(64 * s, 64 * (s + 1))
        torch.testing.assert_close(energy.model(s)(x[rows]), out[rows], atol=1e-5, rtol=1e-5)
        # each model's pre-activations standardized on its own rows
        assert abs(float(out[rows].detach().mean())) < 1e-4
    first = next(m for m in energy.modules() if isinstance(m, BatchedWeightNormLinear))
    assert not torch.allclose(first.g[0], first.g[1])


def test_batched_generator_and_batch_norm_per_model() -> None:
    gen = BatchedMLPGenerator(3, 2, 2, hidden=(8, 8), sigma=0.1)
    h = torch.randn(3 * 32, 2, generator=_gen(1))
    h[32:64] += 5.0  # model 1's rows have other statistics: its batch norm must not see the others
    gen.train()
    out = gen(h)
    for s in range(3):
        single = gen.model(s)
        single.train()
        torch.testing.assert_close(
            single(h[32 * s : 32 * (s + 1)]), out[32 * s : 32 * (s + 1)], atol=1e-5, rtol=1e-5
        )
    bn = next(m for m in gen.modules() if isinstance(m, BatchedBatchNorm1d))
    assert bn.running_mean.shape == (3 * 8,)
    with pytest.raises(ValueError, match="does not split into 3 models"):
        gen(torch.randn(10, 2))


def test_models_do_not_share_gradients() -> None:
    energy = paper_potential("gmm", n_models=3, hidden=(8,))
    x = torch.randn(3 * 10, 2, generator=_gen(2))
    energy(x)[:10].sum().backward()  # a loss of model 0 only
    for p in energy.parameters():
        if p.grad is not None:
            assert p.grad[1:].abs().sum() == 0


def test_batched_unit_init_and_preset_overrides() -> None:
    energy = paper_potential("kdd", n_models=2, event_shape=(20,), init="unit", scale_trainable=False)
    assert energy.event_shape == (20,)
    x = torch.rand(2 * 32, 20, generator=_gen(3))
    data_dependent_init(energy, x)  # no layer asks for it: unit rows, zero biases stay
    layers = [m for m in energy.modules() if isinstance(m, BatchedWeightNormLinear)]
    assert [layer.data_init for layer in layers] == [False] * 4
    torch.testing.assert_close(layers[0].weight.norm(dim=2), torch.ones(2, 60), atol=1e-3, rtol=0)
    assert float(layers[0].bias.detach().abs().sum()) == 0.0
    single = energy.model(1)
    torch.testing.assert_close(single(x[32:]), energy(x)[32:], atol=1e-5, rtol=1e-5)


def test_presets_refuse_batching_conv_networks() -> None:
    with pytest.raises(ValueError, match="only the MLP presets"):
        paper_potential("cifar", n_models=2)
    with pytest.raises(ValueError, match="only the MLP presets"):
        paper_generator("cifar", n_models=2)


@pytest.mark.slow
def test_batched_training_run_reports_per_model_spread(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = load_config(write_config(tmp_path, steps=20, eval_every=0), ["model.n_models=3"])
    _, final = train(cfg)
    assert {"covered_modes", "covered_modes_sd", "realistic_ratio_sd"} <= set(final)
    assert final["covered_modes_sd"] >= 0
    run = tmp_path / "runs" / "tiny"
    out = tmp_path / "m1.npy"
    assert main(["sample", str(run), "-n", "5", "--model", "1", "--out", str(out)]) == 0
    assert np.load(out).shape == (5, 2)
    assert main(["sample", str(run), "-n", "5", "--out", str(tmp_path / "m.npy")]) == 1  # which model?
