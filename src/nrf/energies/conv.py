"""Convolutional potentials.

* :class:`ConvEnergy`: the weight-normalized conv net of Inclusive-NRF Table IX (CIFAR-10
  anomaly detection), a 9-layer all-convolutional stack, global average pooling and one
  weight-normalized linear unit.
* :class:`SNGANConvEnergy`: the standard CNN discriminator of SNGAN (Miyato et al., 2018,
  Table 3), with spectral norm, used by the paper for CIFAR-10 image generation.
* :class:`SNGANResNetEnergy`: the SNGAN ResNet discriminator for 32 x 32 images (Table 4).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from nrf._checks import check_int_sequence, check_positive, check_positive_int
from nrf.energies.base import Energy
from nrf.nn import WeightNormConv2d, WeightNormLinear


def image_shape(name: str, shape: Sequence[int]) -> tuple[int, int, int]:
    """``shape`` as (channels, height, width), or a ValueError naming ``name``."""
    dims = check_int_sequence(name, shape, allow_empty=False)
    if len(dims) != 3:
        raise ValueError(f"{name} must be (channels, height, width), got {tuple(shape)}")
    return dims[0], dims[1], dims[2]


class ConvEnergy(Energy):
    """Weight-normalized conv potential of Inclusive-NRF Table IX.

    Layers (leaky ReLU 0.2 after each conv): 3x3 conv 96, 3x3 conv 96, 3x3 conv 96 stride 2,
    3x3 conv 192, 3x3 conv 192, 3x3 conv 192 stride 2, 3x3 conv 192 (no padding), 1x1 conv
    192, 1x1 conv 192, global average pooling, linear 1. Optional dropout after the two
    strided blocks (``dropout``; 0 by default) as in the improved-GAN discriminators.

    >>> energy = ConvEnergy((3, 32, 32))
    >>> energy(torch.randn(4, 3, 32, 32)).shape
    torch.Size([4])
    """

    def __init__(
        self,
        event_shape: Sequence[int] = (3, 32, 32),
        widths: tuple[int, int] = (96, 192),
        *,
        negative_slope: float = 0.2,
        dropout: float = 0.0,
        scale_trainable: bool = True,
    ) -> None:
        super().__init__()
        self.event_shape = image_shape("event_shape", event_shape)
        c, h, w = self.event_shape
        if min(h, w) < 12:
            raise ValueError(f"ConvEnergy needs images of at least 12 x 12 pixels, got {h} x {w}")
        w1, w2 = check_int_sequence("widths", widths)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        check_positive("negative_slope", negative_slope, allow_zero=True)
        # (in, out, kernel, stride, padding); None marks where dropout goes.
        spec: list[tuple[int, int, int, int, int] | None] = [
            (c, w1, 3, 1, 1), (w1, w1, 3, 1, 1), (w1, w1, 3, 2, 1), None,
            (w1, w2, 3, 1, 1), (w2, w2, 3, 1, 1), (w2, w2, 3, 2, 1), None,
            (w2, w2, 3, 1, 0), (w2, w2, 1, 1, 0), (w2, w2, 1, 1, 0),
        ]  # fmt: skip
        layers: list[nn.Module] = []
        for item in spec:
            if item is None:
                if dropout > 0:
                    layers.append(nn.Dropout(dropout))
                continue
            n_in, n_out, k, s, p = item
            layers.append(WeightNormConv2d(n_in, n_out, k, s, p, scale_trainable=scale_trainable))
            layers.append(nn.LeakyReLU(negative_slope))
        self.features = nn.Sequential(*layers)
        self.head = WeightNormLinear(w2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(self._image_batch(x))
        return self.head(h.mean(dim=(2, 3))).squeeze(-1)


class SNGANConvEnergy(Energy):
    """Standard CNN discriminator of SNGAN (Table 3), spectral-normalized, as an energy.

    3x3 conv 64, 4x4 conv 64 stride 2, 3x3 conv 128, 4x4 conv 128 stride 2, 3x3 conv 256,
    4x4 conv 256 stride 2, 3x3 conv 512, each with leaky ReLU 0.1; dense 1.

    >>> SNGANConvEnergy((3, 32, 32))(torch.randn(2, 3, 32, 32)).shape
    torch.Size([2])
    """

    def __init__(
        self,
        event_shape: Sequence[int] = (3, 32, 32),
        base_width: int = 64,
        *,
        negative_slope: float = 0.1,
        spectral: bool = True,
    ) -> None:
        super().__init__()
        self.event_shape = image_shape("event_shape", event_shape)
        c, h, w = self.event_shape
        if h % 8 or w % 8:
            raise ValueError(f"SNGANConvEnergy needs height and width divisible by 8, got {h} x {w}")
        b = check_positive_int("base_width", base_width)
        sn = spectral_norm if spectral else (lambda m: m)
        spec = [(c, b, 3, 1), (b, b, 4, 2), (b, 2 * b, 3, 1), (2 * b, 2 * b, 4, 2),
                (2 * b, 4 * b, 3, 1), (4 * b, 4 * b, 4, 2), (4 * b, 8 * b, 3, 1)]  # fmt: skip
        layers: list[nn.Module] = []
        for n_in, n_out, k, s in spec:
            layers += [sn(nn.Conv2d(n_in, n_out, k, s, 1)), nn.LeakyReLU(negative_slope)]
        self.features = nn.Sequential(*layers)
        self.head = sn(nn.Linear(8 * b * (h // 8) * (w // 8), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(self._image_batch(x)).flatten(1)).squeeze(-1)


class _DiscriminatorBlock(nn.Module):
    """Pre-activation residual block of the SNGAN ResNet discriminator."""

    def __init__(self, n_in: int, n_out: int, downsample: bool, first: bool, spectral: bool) -> None:
        super().__init__()
        sn = spectral_norm if spectral else (lambda m: m)
        self.first = first
        self.downsample = downsample
        self.conv1 = sn(nn.Conv2d(n_in, n_out, 3, 1, 1))
        self.conv2 = sn(nn.Conv2d(n_out, n_out, 3, 1, 1))
        self.shortcut = sn(nn.Conv2d(n_in, n_out, 1)) if (n_in != n_out or downsample) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(x)
        h = self.conv2(F.relu(self.conv1(h)))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        s = x
        if self.shortcut is not None:
            if self.first:  # "optimized" first block: pool, then 1x1 conv
                s = self.shortcut(F.avg_pool2d(s, 2) if self.downsample else s)
            else:
                s = self.shortcut(s)
                s = F.avg_pool2d(s, 2) if self.downsample else s
        return h + s


class SNGANResNetEnergy(Energy):
    """SNGAN ResNet discriminator for 32 x 32 images (Table 4), as an energy.

    ResBlock down 128, ResBlock down 128, ResBlock 128, ResBlock 128, ReLU, global sum
    pooling, dense 1; spectral norm on every layer.

    >>> SNGANResNetEnergy((3, 32, 32), width=32)(torch.randn(2, 3, 32, 32)).shape
    torch.Size([2])
    """

    def __init__(
        self, event_shape: Sequence[int] = (3, 32, 32), width: int = 128, *, spectral: bool = True
    ) -> None:
        super().__init__()
        self.event_shape = image_shape("event_shape", event_shape)
        c, h, w = self.event_shape
        if h % 4 or w % 4:
            raise ValueError(f"SNGANResNetEnergy needs height and width divisible by 4, got {h} x {w}")
        n = check_positive_int("width", width)
        self.blocks = nn.Sequential(
            _DiscriminatorBlock(c, n, downsample=True, first=True, spectral=spectral),
            _DiscriminatorBlock(n, n, downsample=True, first=False, spectral=spectral),
            _DiscriminatorBlock(n, n, downsample=False, first=False, spectral=spectral),
            _DiscriminatorBlock(n, n, downsample=False, first=False, spectral=spectral),
        )
        head = nn.Linear(n, 1)
        self.head = spectral_norm(head) if spectral else head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.blocks(self._image_batch(x)))
        return self.head(h.sum(dim=(2, 3))).squeeze(-1)


def tutorial_body(
    event_shape: tuple[int, int, int], hidden: int, spectral: bool
) -> tuple[nn.Sequential, int]:
    """The EBM tutorial's convolutional body (003_…, section 11.2) up to its last hidden layer:

        conv 5x5 c/2 stride 2 pad 4, Swish, conv 3x3 c stride 2, Swish, conv 3x3 2c stride 2,
        Swish, conv 3x3 2c stride 2, Swish, flatten, linear 2c, Swish

    with c = ``hidden``; returns it and its width 2c."""
    c, h, w = event_shape
    n = check_positive_int("hidden", hidden)
    if n < 2:
        raise ValueError(f"hidden must be >= 2 (the first layer has hidden // 2 channels), got {n}")
    sn = spectral_norm if spectral else (lambda m: m)
    c1, c2, c3 = n // 2, n, 2 * n
    size = lambda s, k, p: (s + 2 * p - k) // 2 + 1  # noqa: E731 - output size of a stride-2 conv
    hh, ww = size(h, 5, 4), size(w, 5, 4)
    for _ in range(3):
        hh, ww = size(hh, 3, 1), size(ww, 3, 1)
    body = nn.Sequential(
        sn(nn.Conv2d(c, c1, 5, 2, 4)), nn.SiLU(),
        sn(nn.Conv2d(c1, c2, 3, 2, 1)), nn.SiLU(),
        sn(nn.Conv2d(c2, c3, 3, 2, 1)), nn.SiLU(),
        sn(nn.Conv2d(c3, c3, 3, 2, 1)), nn.SiLU(),
        nn.Flatten(), sn(nn.Linear(c3 * hh * ww, c3)), nn.SiLU(),
    )  # fmt: skip
    return body, c3


def tutorial_head(width: int, outputs: int, spectral: bool) -> nn.Module:
    """The linear layer on :func:`tutorial_body`'s ``width`` activations (``outputs`` units;
    spectral-normalized when ``spectral``)."""
    head = nn.Linear(width, outputs)
    return spectral_norm(head) if spectral else head


class TutorialCNNEnergy(Energy):
    """The small CNN of the EBM tutorial's MNIST example (003_…, section 11.2):
    :func:`tutorial_body` (c = ``hidden``, 32: 16-32-64 channels; 28 x 28 inputs give 2 x 2
    maps before the flatten) and a linear unit f. The tutorial's network outputs -E; the
    energy is E(x) = -f(x). ``spectral`` puts spectral normalization on every layer (IGEBM's
    constraint; not in the tutorial).

    >>> TutorialCNNEnergy()(torch.rand(3, 1, 28, 28)).shape
    torch.Size([3])
    """

    rows_independent = True

    def __init__(
        self, event_shape: Sequence[int] = (1, 28, 28), hidden: int = 32, *, spectral: bool = False
    ) -> None:
        super().__init__()
        self.event_shape = image_shape("event_shape", event_shape)
        body, width = tutorial_body(self.event_shape, hidden, spectral)
        self.f = nn.Sequential(*body, tutorial_head(width, 1, spectral))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -self.f(self._image_batch(x)).squeeze(-1)
