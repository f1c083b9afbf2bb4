"""Weight-normalized layers and data-dependent initialization."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nrf.nn import (
    WeightNormConv2d,
    WeightNormConvTranspose2d,
    WeightNormLinear,
    data_dependent_init,
    make_activation,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_weight_is_g_times_unit_direction() -> None:
    layer = WeightNormLinear(4, 3)
    with torch.no_grad():
        layer.g.copy_(torch.tensor([1.0, 2.0, 0.5]))
    norms = layer.weight.norm(dim=1)
    torch.testing.assert_close(norms, torch.tensor([1.0, 2.0, 0.5]), atol=1e-5, rtol=1e-5)
    x = torch.randn(5, 4, generator=_gen())
    torch.testing.assert_close(layer(x), x @ layer.weight.T + layer.bias)


@pytest.mark.parametrize("scale", [1.0, 0.1])
def test_ddi_standardizes_linear_preactivations(scale: float) -> None:
    x = 3.0 + 5.0 * torch.randn(512, 10, generator=_gen(1))
    layer = WeightNormLinear(10, 7, init_scale=scale)
    data_dependent_init(layer, x)
    with torch.no_grad():
        y = layer(x)
    torch.testing.assert_close(y.mean(0), torch.zeros(7), atol=1e-4, rtol=0)
    torch.testing.assert_close(y.std(0, unbiased=False), torch.full((7,), scale), atol=1e-3, rtol=1e-3)


def test_ddi_standardizes_every_layer_of_a_deep_net() -> None:
    net = nn.Sequential(
        WeightNormLinear(6, 20), nn.Tanh(), WeightNormLinear(20, 20), nn.Tanh(), WeightNormLinear(20, 1)
    )
    x = torch.randn(400, 6, generator=_gen(2)) * 10
    data_dependent_init(net, x)
    captured: list[torch.Tensor] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, o: captured.append(o))
        for m in net
        if isinstance(m, WeightNormLinear)
    ]
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    assert len(captured) == 3
    for out in captured:
        torch.testing.assert_close(out.mean(0), torch.zeros(out.shape[1]), atol=1e-4, rtol=0)
        torch.testing.assert_close(out.std(0, unbiased=False), torch.ones(out.shape[1]), atol=1e-3, rtol=1e-3)


def test_ddi_conv_and_deconv_per_channel() -> None:
    x = torch.randn(32, 3, 8, 8, generator=_gen(3)) * 4 + 1
    conv = WeightNormConv2d(3, 5, 3, padding=1)
    data_dependent_init(conv, x)
    with torch.no_grad():
        y = conv(x)
    torch.testing.assert_close(y.mean(dim=(0, 2, 3)), torch.zeros(5), atol=1e-4, rtol=0)
    torch.testing.assert_close(y.std(dim=(0, 2, 3), unbiased=False), torch.ones(5), atol=1e-3, rtol=1e-3)
    deconv = WeightNormConvTranspose2d(3, 4, 5, stride=2, padding=2, output_padding=1)
    data_dependent_init(deconv, x)
    with torch.no_grad():
        z = deconv(x)
    assert z.shape == (32, 4, 16, 16)
    torch.testing.assert_close(z.mean(dim=(0, 2, 3)), torch.zeros(4), atol=1e-4, rtol=0)
    # The deconv weight is normalized per output channel (dim 1 of the kernel).
    w = deconv.weight
    torch.testing.assert_close(w.pow(2).sum(dim=(0, 2, 3)).sqrt(), deconv.g.detach(), atol=1e-5, rtol=1e-5)


def test_ddi_restores_batchnorm_statistics_and_mode() -> None:
    net = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.ReLU(), WeightNormLinear(8, 2))
    net.eval()
    before = net[1].running_mean.clone()
    data_dependent_init(net, torch.randn(64, 3, generator=_gen(4)) + 5)
    assert not net.training
    torch.testing.assert_close(net[1].running_mean, before)
    assert int(net[1].num_batches_tracked) == 0


def test_ddi_errors() -> None:
    with pytest.raises(ValueError, match="no weight-normalized layer"):
        data_dependent_init(nn.Linear(2, 2), torch.randn(4, 2))

    class Skips(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used = WeightNormLinear(2, 2)
            self.unused = WeightNormLinear(2, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.used(x)

    with pytest.raises(ValueError, match="not reached"):
        data_dependent_init(Skips(), torch.randn(8, 2))


def test_fixed_scale_is_not_trained_but_is_initialized() -> None:
    layer = WeightNormLinear(3, 4, scale_trainable=False)
    assert not layer.g.requires_grad
    data_dependent_init(layer, torch.randn(50, 3, generator=_gen(5)) * 7)
    assert not torch.allclose(layer.g, torch.ones(4))
    layer(torch.randn(2, 3)).sum().backward()
    assert layer.g.grad is None
    assert layer.v.grad is not None


def test_layers_without_data_init_keep_unit_rows() -> None:
    from nrf.energies import MLPEnergy

    torch.manual_seed(0)
    energy = MLPEnergy((3,), hidden=(8, 4), activation="tanh", scale_trainable=False, init="unit")
    before = [p.detach().clone() for p in energy.parameters()]
    data_dependent_init(energy, torch.randn(50, 3, generator=_gen(1)) * 7)  # a no-op here
    assert all(torch.equal(a, b) for a, b in zip(before, energy.parameters(), strict=True))
    layers = [m for m in energy.modules() if isinstance(m, WeightNormLinear)]
    for layer in layers:  # unit rows up to the layer's epsilon in sqrt(|v|^2 + eps)
        ones = torch.ones(layer.out_features)
        torch.testing.assert_close(layer.weight.norm(dim=1), ones, atol=1e-3, rtol=0)
        assert torch.count_nonzero(layer.bias) == 0
    assert [layer.g.requires_grad for layer in layers] == [False, False, True]  # the output scale trains
    mixed = nn.Sequential(WeightNormLinear(3, 5, data_init=False), nn.Tanh(), WeightNormLinear(5, 2))
    data_dependent_init(mixed, torch.randn(50, 3, generator=_gen(2)) * 7)
    torch.testing.assert_close(mixed[0].g, torch.ones(5))
    assert not torch.allclose(mixed[2].g, torch.ones(2))
    with pytest.raises(ValueError, match="init must be one of"):
        MLPEnergy((3,), init="zeros")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"in_features": 0, "out_features": 2}, "in_features"),
        ({"in_features": 2, "out_features": -1}, "out_features"),
    ],
)
def test_invalid_sizes(kwargs: dict[str, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        WeightNormLinear(**kwargs)


def test_activation_names() -> None:
    assert isinstance(make_activation("tanh"), nn.Tanh)
    assert make_activation("leaky_relu", 0.3).negative_slope == pytest.approx(0.3)
    with pytest.raises(ValueError, match="activation must be one of"):
        make_activation("swishy")


def test_frozen_weights_cache_matches_and_follows_parameter_updates() -> None:
    from nrf.nn import frozen_weights

    net = nn.Sequential(WeightNormLinear(3, 8), nn.Tanh(), WeightNormLinear(8, 1))
    data_dependent_init(net, torch.randn(64, 3, generator=_gen(6)))
    x = torch.randn(10, 3, generator=_gen(7))
    reference = net(x)
    with frozen_weights():
        torch.testing.assert_close(net(x), reference)
        xg = x.clone().requires_grad_(True)
        (gx,) = torch.autograd.grad(net(xg).sum(), xg)
    xg2 = x.clone().requires_grad_(True)
    (gx_ref,) = torch.autograd.grad(net(xg2).sum(), xg2)
    torch.testing.assert_close(gx, gx_ref)
    # An optimizer step changes v in place: the cache must notice.
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    net(x).pow(2).sum().backward()
    opt.step()
    updated = net(x)
    assert not torch.allclose(updated, reference)
    with frozen_weights(), torch.no_grad():
        torch.testing.assert_close(net(x), updated)
    # load_state_dict (copy_) also invalidates it.
    other = nn.Sequential(WeightNormLinear(3, 8), nn.Tanh(), WeightNormLinear(8, 1))
    with torch.no_grad():
        other(x)  # fills the cache with the random init
    other.load_state_dict(net.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(other(x), updated)
