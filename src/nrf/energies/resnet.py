"""Residual energies in the style of IGEBM (Du & Mordatch 2019, 002_… appendix; 001_…
section 8.5): pre-activation residual blocks with leaky ReLU, optional spectral norm, and,
for class-conditional models, a per-class gain and bias after each convolution,

    h <- gain[y] * conv(h) + bias[y]      (gain initialized to 1, bias to 0).

* :class:`ResNetEnergy` E(x): a small residual energy (MNIST) or IGEBM's CIFAR-10 /
  ImageNet 32 x 32 networks (``preset``);
* :class:`ConditionalResNetEnergy` E(x, y): the same network with the per-class gains and
  biases, as a :class:`~nrf.energies.classifier.ClassEnergy` (logits -E(x, y) for every y
  from one batched pass of n x C rows; ``class_energy(x, y)`` from one pass).

The head sums the last block's activations over space and maps them to one energy.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from nrf._checks import check_choice, check_int_sequence, check_positive_int
from nrf.energies.base import Energy
from nrf.energies.classifier import ClassEnergy
from nrf.energies.conv import image_shape

#: (channels per stage, blocks per stage); the first block of every stage halves the size.
#: ``cifar10`` and ``imagenet32`` follow the layout of IGEBM's ResNet32 and ResNet32Large
#: (stage widths, blocks, where the size halves, sum pooling, a head without spectral norm);
#: the blocks' insides are nrf's pre-activation blocks.
PRESETS: dict[str, tuple[tuple[int, ...], int]] = {
    "mnist": ((32, 64), 2),  # 28 -> 14 -> 7
    "cifar10": ((128, 256, 256), 2),  # 32 -> 16 -> 8 -> 4
    "imagenet32": ((128, 256, 512), 3),
}


class _Block(nn.Module):
    """Pre-activation block: act, conv, [gain/bias], act, conv, [gain/bias], + shortcut,
    then average-pool by 2 when ``down``."""

    def __init__(
        self, n_in: int, n_out: int, down: bool, n_classes: int, spectral: bool, slope: float
    ) -> None:
        super().__init__()
        sn = spectral_norm if spectral else (lambda m: m)
        self.conv1 = sn(nn.Conv2d(n_in, n_out, 3, 1, 1))
        self.conv2 = sn(nn.Conv2d(n_out, n_out, 3, 1, 1))
        self.shortcut = sn(nn.Conv2d(n_in, n_out, 1)) if n_in != n_out else None
        self.down = down
        self.slope = slope
        self.n_classes = n_classes
        if n_classes:
            self.gain = nn.Parameter(torch.ones(2, n_classes, n_out))
            self.bias = nn.Parameter(torch.zeros(2, n_classes, n_out))

    def _film(self, h: torch.Tensor, y: torch.Tensor | None, i: int) -> torch.Tensor:
        if not self.n_classes:
            return h
        assert y is not None
        return h * self.gain[i, y][:, :, None, None] + self.bias[i, y][:, :, None, None]

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self._film(self.conv1(F.leaky_relu(x, self.slope)), y, 0)
        h = self._film(self.conv2(F.leaky_relu(h, self.slope)), y, 1)
        s = x if self.shortcut is None else self.shortcut(x)
        out = h + s
        return F.avg_pool2d(out, 2) if self.down else out


class _ResNet(nn.Module):
    def __init__(
        self,
        event_shape: tuple[int, int, int],
        channels: Sequence[int],
        blocks: int,
        n_classes: int,
        spectral: bool,
        slope: float,
    ) -> None:
        super().__init__()
        widths = check_int_sequence("channels", channels, allow_empty=False)
        check_positive_int("blocks", blocks)
        c, h, w = event_shape
        if min(h, w) < 2 ** len(widths):
            raise ValueError(
                f"images of {h} x {w} are too small to be halved {len(widths)} times (once per stage)"
            )
        sn = spectral_norm if spectral else (lambda m: m)
        self.stem = sn(nn.Conv2d(c, widths[0], 3, 1, 1))
        layers: list[_Block] = []
        n_in = widths[0]
        for width in widths:
            for b in range(blocks):
                layers.append(_Block(n_in, width, b == 0, n_classes, spectral, slope))
                n_in = width
        self.blocks = nn.ModuleList(layers)
        self.slope = slope if n_classes else 0.0  # IGEBM: ReLU before the head, leaky when conditional
        self.head = nn.Linear(n_in, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.stem(x)
        for block in self.blocks:
            h = block(h, y)
        return self.head(F.leaky_relu(h, self.slope).sum(dim=(2, 3))).squeeze(-1)


def _arch(preset: str, channels: Sequence[int] | None, blocks: int | None) -> tuple[tuple[int, ...], int]:
    widths, n_blocks = PRESETS[check_choice("preset", preset, tuple(PRESETS))]
    return (tuple(channels) if channels is not None else widths), (blocks if blocks is not None else n_blocks)


class ResNetEnergy(Energy):
    """An unconditional residual energy E(x).

    Parameters
    ----------
    event_shape:
        (channels, height, width) of the images.
    preset:
        ``"mnist"`` (stages of 32 and 64 channels, two blocks each), ``"cifar10"`` or
        ``"imagenet32"`` (IGEBM's 32 x 32 networks, see :data:`PRESETS`); ``channels`` /
        ``blocks`` override.
    spectral:
        Spectral normalization on every layer (IGEBM's default).

    >>> ResNetEnergy((1, 28, 28))(torch.rand(2, 1, 28, 28)).shape
    torch.Size([2])
    """

    rows_independent = True

    def __init__(
        self,
        event_shape: Sequence[int] = (1, 28, 28),
        preset: str = "mnist",
        *,
        channels: Sequence[int] | None = None,
        blocks: int | None = None,
        spectral: bool = True,
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__()
        self.event_shape = image_shape("event_shape", event_shape)
        widths, n_blocks = _arch(preset, channels, blocks)
        self.net = _ResNet(self.event_shape, widths, n_blocks, 0, spectral, negative_slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(self._image_batch(x))
        return out


class ConditionalResNetEnergy(ClassEnergy):
    """A class-conditional residual energy E(x, y) with per-class gains and biases (IGEBM's
    conditional models); parameters as :class:`ResNetEnergy`, plus ``n_classes``.

    >>> net = ConditionalResNetEnergy((1, 28, 28), n_classes=10)
    >>> x = torch.rand(2, 1, 28, 28)
    >>> net.logits(x).shape, net.class_energy(x, torch.tensor([3, 7])).shape
    (torch.Size([2, 10]), torch.Size([2]))
    """

    rows_independent = True

    def __init__(
        self,
        event_shape: Sequence[int] = (1, 28, 28),
        n_classes: int = 10,
        preset: str = "mnist",
        *,
        channels: Sequence[int] | None = None,
        blocks: int | None = None,
        spectral: bool = True,
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__()
        self.event_shape = image_shape("event_shape", event_shape)
        self.n_classes = check_positive_int("n_classes", n_classes)
        widths, n_blocks = _arch(preset, channels, blocks)
        self.net = _ResNet(self.event_shape, widths, n_blocks, self.n_classes, spectral, negative_slope)

    def checked_class_energy(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """E(x, y), one pass (labels checked by :meth:`class_energy`)."""
        out: torch.Tensor = self.net(self._image_batch(x), y)
        return out

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """-E(x, y) for every class: one pass over the n x C (image, class) pairs."""
        return self.pairwise_logits(x)
