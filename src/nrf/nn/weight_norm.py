"""Weight-normalized layers with data-dependent initialization.

Weight normalization (Salimans & Kingma, 2016) writes each output unit's weight as

    w = g * v / ||v||,        y = w . x + b,

and the data-dependent initialization sets, from one batch of real inputs,

    t = (v . x) / ||v||,      g <- s / std(t),      b <- -mean(t) * s / std(t),

so that every pre-activation starts with mean 0 and standard deviation ``s``
(``init_scale``, 1 by default) on that batch. ``v`` starts as N(0, 0.05^2).

The networks of the Inclusive-NRF paper (Tables VI-IX) use these layers; its authors'
code keeps the hidden scales ``g`` fixed after the initialization in the toy experiment,
which ``scale_trainable=False`` reproduces. Their KDDCUP99 code skips the data-dependent
initialization (g = 1, b = 0: unit-norm weight rows) and keeps the hidden scales at 1:
``data_init=False`` with ``scale_trainable=False``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nrf._checks import check_positive, check_positive_int

_V_INIT_STD = 0.05
_EPS = 1e-8
_STATE = threading.local()


@contextlib.contextmanager
def frozen_weights() -> Iterator[None]:
    """Within this context, weight-normalized layers reuse a cached, detached weight.

    Samplers differentiate the energy with respect to x only, with the parameters fixed,
    so recomputing g * v / ||v|| (and recording it for autograd) at every step is wasted
    work. The cache is keyed on the parameters' storage and version counters, so an
    optimizer step, ``load_state_dict`` or a device move invalidates it. Gradients with
    respect to the parameters do not flow through layers inside this context (the bias
    is unaffected). The targets in :mod:`nrf.targets` use it while computing gradients;
    outside it, and whenever autograd is disabled, the cache is used only when it cannot
    change a result (no gradient is recorded).
    """
    previous = getattr(_STATE, "frozen", False)
    _STATE.frozen = True
    try:
        yield
    finally:
        _STATE.frozen = previous


class _WeightNorm(nn.Module):
    """Shared machinery: parameters ``v`` / ``g`` / ``bias`` and the init hook."""

    v: nn.Parameter
    g: nn.Parameter
    bias: nn.Parameter | None
    _out_dim: int = 0

    def _setup(
        self,
        v_shape: tuple[int, ...],
        out_features: int | tuple[int, ...],
        bias: bool,
        scale_trainable: bool,
        init_scale: float,
        data_init: bool = True,
    ) -> None:
        self.init_scale = check_positive("init_scale", init_scale)
        self.data_init = bool(data_init)
        self.v = nn.Parameter(torch.randn(v_shape) * _V_INIT_STD)
        self.g = nn.Parameter(torch.ones(out_features), requires_grad=scale_trainable)
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self.init_pending = False

    def _stat_dims(self, t: torch.Tensor) -> list[int]:
        """Dimensions of a pre-activation reduced by the data-dependent init (all but channels)."""
        return [d for d in range(t.dim()) if d != 1]

    def _norm_dims(self) -> list[int]:
        return [d for d in range(self.v.dim()) if d != self._out_dim]

    def _unit_shape(self) -> list[int]:
        shape = [1] * self.v.dim()
        shape[self._out_dim] = -1
        return shape

    @property
    def weight(self) -> torch.Tensor:
        """The effective weight g * v / ||v|| (norm over all but the output dimension)."""
        norm = self.v.pow(2).sum(dim=self._norm_dims(), keepdim=True).add(_EPS).sqrt()
        return self.v * (self.g.view(self._unit_shape()) / norm)

    def _apply_weight(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.init_pending:
            return self._initialize(x)
        if getattr(_STATE, "frozen", False) or not torch.is_grad_enabled():
            return self._apply_weight(x, self._cached_weight(), self.bias)
        return self._apply_weight(x, self.weight, self.bias)

    def _cached_weight(self) -> torch.Tensor:
        v, g = self.v, self.g
        key = (v.data_ptr(), v._version, g.data_ptr(), g._version, v.dtype, v.device)
        cache = self.__dict__.get("_weight_cache")
        if cache is None or cache[0] != key:
            with torch.no_grad():
                cache = (key, self.weight.detach())
            self.__dict__["_weight_cache"] = cache
        weight: torch.Tensor = cache[1]
        return weight

    @torch.no_grad()
    def _initialize(self, x: torch.Tensor) -> torch.Tensor:
        norm = self.v.pow(2).sum(dim=self._norm_dims(), keepdim=True).add(_EPS).sqrt()
        t = self._apply_weight(x, self.v / norm, None)
        reduce = self._stat_dims(t)
        mean = t.mean(dim=reduce)
        std = t.std(dim=reduce, unbiased=False) if t.numel() > mean.numel() else torch.ones_like(mean)
        scale = self.init_scale / (std + 1e-6)
        self.g.copy_(scale)
        if self.bias is not None:
            self.bias.copy_(-mean * scale)
        self.init_pending = False
        return self._apply_weight(x, self.weight, self.bias)


class WeightNormLinear(_WeightNorm):
    """Fully connected layer y = (g v / ||v||) x + b with data-dependent init.

    Examples
    --------
    >>> layer = WeightNormLinear(3, 5)
    >>> data_dependent_init(layer, torch.randn(64, 3)).weight.shape
    torch.Size([5, 3])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        scale_trainable: bool = True,
        init_scale: float = 1.0,
        data_init: bool = True,
    ) -> None:
        super().__init__()
        self.in_features = check_positive_int("in_features", in_features)
        self.out_features = check_positive_int("out_features", out_features)
        self._setup((out_features, in_features), out_features, bias, scale_trainable, init_scale, data_init)

    def _apply_weight(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return F.linear(x, weight, bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


class WeightNormConv2d(_WeightNorm):
    """2-D convolution with a weight-normalized kernel (norm per output channel)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
        *,
        scale_trainable: bool = True,
        init_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int("out_channels", out_channels)
        self.kernel_size = check_positive_int("kernel_size", kernel_size)
        self.stride = check_positive_int("stride", stride)
        self.padding = check_positive_int("padding", padding, allow_zero=True)
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        self._setup(shape, out_channels, bias, scale_trainable, init_scale)

    def _apply_weight(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return F.conv2d(x, weight, bias, stride=self.stride, padding=self.padding)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}"
        )


class WeightNormConvTranspose2d(_WeightNorm):
    """Transposed 2-D convolution with a weight-normalized kernel (norm per output channel)."""

    _out_dim = 1

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        output_padding: int = 0,
        bias: bool = True,
        *,
        scale_trainable: bool = True,
        init_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int("out_channels", out_channels)
        self.kernel_size = check_positive_int("kernel_size", kernel_size)
        self.stride = check_positive_int("stride", stride)
        self.padding = check_positive_int("padding", padding, allow_zero=True)
        self.output_padding = check_positive_int("output_padding", output_padding, allow_zero=True)
        shape = (in_channels, out_channels, kernel_size, kernel_size)
        self._setup(shape, out_channels, bias, scale_trainable, init_scale)

    def _apply_weight(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return F.conv_transpose2d(
            x, weight, bias, stride=self.stride, padding=self.padding, output_padding=self.output_padding
        )

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, output_padding={self.output_padding}"
        )


def weight_norm_layers(module: nn.Module) -> Iterator[_WeightNorm]:
    """All weight-normalized layers inside ``module``, in registration order."""
    for m in module.modules():
        if isinstance(m, _WeightNorm):
            yield m


@torch.no_grad()
def data_dependent_init(module: nn.Module, *inputs: Any) -> nn.Module:
    """Initialize every weight-normalized layer of ``module`` from one batch.

    Runs ``module(*inputs)`` once without gradients; each weight-normalized layer, when
    reached, sets its scale and bias so that its pre-activations on this batch have
    mean 0 and standard deviation ``init_scale``. Later layers see the already
    initialized outputs of earlier ones, as in Salimans & Kingma (2016).

    Batch-norm layers use batch statistics during the pass and
    their running statistics are restored afterwards, so the call changes only the
    weight-norm parameters. Layers built with ``data_init=False`` keep their scale and
    bias (the call does nothing when no layer asks for it). Returns ``module``.

    Raises
    ------
    ValueError
        If ``module`` has no weight-normalized layer, or if the pass does not reach one.
    """
    layers = [layer for layer in weight_norm_layers(module) if layer.data_init]
    if not any(True for _ in weight_norm_layers(module)):
        raise ValueError(f"module {type(module).__name__} has no weight-normalized layer to initialize")
    if not layers:
        return module
    bn_state = {
        name: (m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone())
        for name, m in module.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
        and m.running_mean is not None
        and m.running_var is not None
        and m.num_batches_tracked is not None
    }
    was_training = module.training
    module.train()
    for layer in layers:
        layer.init_pending = True
    try:
        module(*inputs)
    finally:
        missed = [layer for layer in layers if layer.init_pending]
        for layer in layers:
            layer.init_pending = False
        module.train(was_training)
        for name, m in module.named_modules():
            if name in bn_state:
                mean, var, count = bn_state[name]
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
                m.num_batches_tracked.copy_(count)
    if missed:
        raise ValueError(
            f"data_dependent_init: {len(missed)} weight-normalized layer(s) of "
            f"{type(module).__name__} were not reached by the forward pass"
        )
    return module
