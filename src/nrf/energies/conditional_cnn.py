"""A class-conditional version of the EBM tutorial's CNN: E(x, y) with a per-class gain and
bias after every layer (the conditioning of IGEBM's conditional residual blocks, 002_…
section 4, on the small network of 003_… section 11.2), cheap enough to train on a CPU.

For each layer l of :func:`~nrf.energies.conv.tutorial_body` (four convolutions and the
hidden linear layer) the pre-activation a_l is replaced by

    a_l(x, y) = g_l[y] * a_l(x) + b_l[y]        (per channel; g = 1, b = 0 at the start)

before its Swish, and E(x, y) = -w^T h(x, y) - c. Every class shares the weights; the 2 x
(16 + 32 + 64 + 64 + 64) gains and biases per class are what tell the classes apart.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nrf._checks import check_positive_int
from nrf.energies.classifier import ClassEnergy
from nrf.energies.conv import image_shape, tutorial_body, tutorial_head


class ConditionalTutorialCNNEnergy(ClassEnergy):
    """E(x, y): the tutorial's CNN (c = ``hidden``; Swish; pixels in [-1, 1]) with per-class
    gains and biases after each of its five layers, and one linear unit.

    ``logits(x)`` evaluates all ``n_classes`` energies (one pass over the n x C image-class
    pairs), so classification by lowest energy costs C passes; ``class_energy(x, y)`` and
    the conditioned samplers cost one.

    >>> net = ConditionalTutorialCNNEnergy()
    >>> x = torch.rand(2, 1, 28, 28) * 2 - 1
    >>> net.logits(x).shape, net.class_energy(x, torch.tensor([3, 7])).shape
    (torch.Size([2, 10]), torch.Size([2]))
    """

    rows_independent = True

    def __init__(
        self,
        event_shape: Sequence[int] = (1, 28, 28),
        n_classes: int = 10,
        *,
        hidden: int = 32,
        spectral: bool = False,
    ) -> None:
        super().__init__()
        self.event_shape = image_shape("event_shape", event_shape)
        self.n_classes = check_positive_int("n_classes", n_classes)
        body, width = tutorial_body(self.event_shape, hidden, spectral)
        self.body = body
        widths = [w for w in map(_width, body) if w is not None]
        # per module of the body: the index of the gain and bias after it, or -1 (activations,
        # flatten); fixed here so that the sampler's every step does no type checks
        film = [_width(m) is not None for m in body]
        self._film = tuple(sum(film[:i]) if f else -1 for i, f in enumerate(film))
        self.gains = nn.ParameterList([nn.Parameter(torch.ones(self.n_classes, w)) for w in widths])
        self.biases = nn.ParameterList([nn.Parameter(torch.zeros(self.n_classes, w)) for w in widths])
        self.head = tutorial_head(width, 1, spectral)

    def checked_class_energy(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """E(x, y), one pass (labels checked by :meth:`class_energy`)."""
        h = self._image_batch(x)
        for module, layer in zip(self.body, self._film, strict=True):
            h = module(h)
            if layer >= 0:
                gain, bias = self.gains[layer][y], self.biases[layer][y]
                if h.dim() == 4:
                    gain, bias = gain[:, :, None, None], bias[:, :, None, None]
                h = h * gain + bias
        out: torch.Tensor = -self.head(h).squeeze(-1)
        return out

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """-E(x, y) for every class: one pass over the n x C (image, class) pairs."""
        return self.pairwise_logits(x)


def _width(module: nn.Module) -> int | None:
    """The output width of a convolution or linear layer, else None."""
    if isinstance(module, nn.Conv2d):
        return int(module.out_channels)
    if isinstance(module, nn.Linear):
        return int(module.out_features)
    return None
