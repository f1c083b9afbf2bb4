"""Convolutional generators.

* :class:`DeconvGenerator`: Inclusive-NRF Table IX (CIFAR-10): linear 4x4x512 with batch
  norm and ReLU, 5x5 deconvolutions 256 and 128 (stride 2, batch norm, ReLU), and a
  weight-normalized 5x5 deconvolution to the image with tanh.
* :class:`SNGANGenerator`: SNGAN's standard CNN generator (Table 3): linear 4x4x512,
  4x4 deconvolutions 256, 128, 64 (stride 2, batch norm, ReLU), 3x3 conv to the image, tanh.
* :class:`SNGANResNetGenerator`: SNGAN's ResNet generator for 32 x 32 images (Table 4).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nrf._checks import check_int_sequence, check_positive_int
from nrf.generators.base import LatentGenerator
from nrf.nn import WeightNormConvTranspose2d, make_activation


def _check_image(shape: Sequence[int], divisor: int, cls: str) -> tuple[int, int, int]:
    dims = check_int_sequence("event_shape", shape, allow_empty=False)
    if len(dims) != 3:
        raise ValueError(f"event_shape must be (channels, height, width), got {tuple(shape)}")
    c, h, w = dims
    if h != w or h % divisor or h < divisor:
        raise ValueError(f"{cls} needs square images with a side divisible by {divisor}, got {h} x {w}")
    return c, h, w


def _upsample_steps(side: int, start: int = 4) -> int:
    steps = 0
    while start * 2**steps < side:
        steps += 1
    if start * 2**steps != side:
        raise ValueError(f"image side must be {start} * 2^k, got {side}")
    return steps


class DeconvGenerator(LatentGenerator):
    """Deconvolutional generator of Inclusive-NRF Table IX.

    >>> gen = DeconvGenerator(100, (3, 32, 32))
    >>> gen.sample(4)[0].shape
    torch.Size([4, 3, 32, 32])
    """

    def __init__(
        self,
        latent_dim: int = 100,
        event_shape: Sequence[int] = (3, 32, 32),
        widths: Sequence[int] = (512, 256, 128),
        *,
        output_activation: str = "tanh",
        sigma: float = 0.0,
        learn_sigma: bool = False,
    ) -> None:
        super().__init__(latent_dim, event_shape, sigma=sigma, learn_sigma=learn_sigma)
        c, side, _ = _check_image(self.event_shape, 8, "DeconvGenerator")
        chans = check_int_sequence("widths", widths, allow_empty=False)
        steps = _upsample_steps(side, 4)
        if len(chans) != steps:
            raise ValueError(
                f"widths must list {steps} channel counts for {side} x {side} images, got {len(chans)}"
            )
        self.base = chans[0]
        self.project = nn.Sequential(
            nn.Linear(self.latent_dim, chans[0] * 16, bias=False), nn.BatchNorm1d(chans[0] * 16), nn.ReLU()
        )
        layers: list[nn.Module] = []
        for n_in, n_out in itertools.pairwise(chans):
            layers += [
                nn.ConvTranspose2d(n_in, n_out, 5, 2, 2, output_padding=1, bias=False),
                nn.BatchNorm2d(n_out),
                nn.ReLU(),
            ]
        layers += [WeightNormConvTranspose2d(chans[-1], c, 5, 2, 2, 1), make_activation(output_activation)]
        self.deconv = nn.Sequential(*layers)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.project(h).view(h.shape[0], self.base, 4, 4))


class SNGANGenerator(LatentGenerator):
    """SNGAN standard CNN generator (Table 3) for 32 x 32 (or 48 x 48 with ``bottom=6``) images.

    >>> SNGANGenerator(128, (3, 32, 32)).sample(2)[0].shape
    torch.Size([2, 3, 32, 32])
    """

    def __init__(
        self,
        latent_dim: int = 128,
        event_shape: Sequence[int] = (3, 32, 32),
        base_width: int = 512,
        *,
        bottom: int = 4,
        sigma: float = 0.0,
        learn_sigma: bool = False,
    ) -> None:
        super().__init__(latent_dim, event_shape, sigma=sigma, learn_sigma=learn_sigma)
        c, side, _ = _check_image(self.event_shape, 8, "SNGANGenerator")
        self.bottom = check_positive_int("bottom", bottom)
        if side != 8 * bottom:
            raise ValueError(
                f"SNGANGenerator with bottom={bottom} makes {8 * bottom} x {8 * bottom} images, got {side}"
            )
        b = check_positive_int("base_width", base_width)
        self.base = b
        self.project = nn.Linear(self.latent_dim, b * bottom * bottom)
        layers: list[nn.Module] = []
        for n_in, n_out in ((b, b // 2), (b // 2, b // 4), (b // 4, b // 8)):
            layers += [nn.ConvTranspose2d(n_in, n_out, 4, 2, 1), nn.BatchNorm2d(n_out), nn.ReLU()]
        layers += [nn.Conv2d(b // 8, c, 3, 1, 1), nn.Tanh()]
        self.deconv = nn.Sequential(*layers)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = self.project(h).view(h.shape[0], self.base, self.bottom, self.bottom)
        return self.deconv(x)


class _GeneratorBlock(nn.Module):
    """Residual up-sampling block: BN-ReLU-up-conv-BN-ReLU-conv, shortcut up-conv1x1."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(n_in)
        self.conv1 = nn.Conv2d(n_in, n_out, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(n_out)
        self.conv2 = nn.Conv2d(n_out, n_out, 3, 1, 1)
        self.shortcut = nn.Conv2d(n_in, n_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(F.relu(self.bn1(x)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h))))
        return h + self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))


class SNGANResNetGenerator(LatentGenerator):
    """SNGAN ResNet generator (Table 4): linear 4x4xW, three up-sampling ResBlocks, BN, ReLU,
    3x3 conv, tanh.

    >>> SNGANResNetGenerator(128, (3, 32, 32), width=32).sample(2)[0].shape
    torch.Size([2, 3, 32, 32])
    """

    def __init__(
        self,
        latent_dim: int = 128,
        event_shape: Sequence[int] = (3, 32, 32),
        width: int = 256,
        *,
        sigma: float = 0.0,
        learn_sigma: bool = False,
    ) -> None:
        super().__init__(latent_dim, event_shape, sigma=sigma, learn_sigma=learn_sigma)
        c, side, _ = _check_image(self.event_shape, 4, "SNGANResNetGenerator")
        steps = _upsample_steps(side, 4)
        n = check_positive_int("width", width)
        self.width = n
        self.project = nn.Linear(self.latent_dim, n * 16)
        self.blocks = nn.Sequential(*[_GeneratorBlock(n, n) for _ in range(steps)])
        self.out = nn.Sequential(nn.BatchNorm2d(n), nn.ReLU(), nn.Conv2d(n, c, 3, 1, 1), nn.Tanh())

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.out(self.blocks(self.project(h).view(h.shape[0], self.width, 4, 4)))
