"""Classifiers read as energies, and the small CNN that nrf's MNIST image metrics use.

A classifier with logits f(x) in R^C defines the class-conditional energies and the
marginal energy of JEM (Grathwohl et al., 2020):

    E(x, y) = -f(x)[y],        E(x) = -log sum_y exp(f(x)[y]),

so p(y | x) = softmax(f(x))[y] is the usual classifier and p(x) ∝ exp(-E(x)) a density over
inputs. :class:`ClassEnergy` holds that contract; ``forward`` returns the marginal energy,
so every sampler and metric of nrf works on a classifier too.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nrf._checks import check_positive_int, check_probability
from nrf.energies.base import Energy
from nrf.energies.conv import image_shape, tutorial_body, tutorial_head
from nrf.nn import evaluation_mode


class ClassEnergy(Energy):
    """An energy with class-conditional parts: subclasses implement :meth:`logits`
    (shape ``(batch, n_classes)``, = -E(x, y) for every y) and set ``n_classes``."""

    n_classes: int

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """f(x) = -E(x, y) for y = 0..n_classes-1, shape ``(batch, n_classes)``."""
        raise NotImplementedError(f"{type(self).__name__} must implement logits(x)")

    def class_energy(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """E(x, y) = -f(x)[y], one per row; ``y`` holds one class index per row (checked)."""
        return self.checked_class_energy(x, check_labels("y", y, x.shape[0], self.n_classes).to(x.device))

    def checked_class_energy(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """E(x, y) for labels already checked (long, on ``x``'s device, one per row): what
        :meth:`class_energy` computes, without its checks (a sampler calls it every step)."""
        return -self.logits(x).gather(1, y.view(-1, 1)).squeeze(1)

    def pairwise_logits(self, x: torch.Tensor) -> torch.Tensor:
        """-E(x, y) for every class from one pass of :meth:`checked_class_energy` over the
        n x C (image, class) pairs: :meth:`logits` for networks that take the class as an
        input (per-class gains and biases), which override ``checked_class_energy``."""
        images = self._image_batch(x)
        n, c = images.shape[0], self.n_classes
        pairs = images.repeat_interleave(c, dim=0)
        y = torch.arange(c, device=images.device).repeat(n)
        return -self.checked_class_energy(pairs, y).view(n, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """E(x) = -logsumexp_y f(x)[y]."""
        return -torch.logsumexp(self.logits(x), dim=1)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """The class of lowest energy E(x, y) per row (evaluation mode, in batches)."""
        check_positive_int("batch_size", batch_size)
        with evaluation_mode(self):
            return torch.cat([self.logits(c).argmax(1) for c in x.split(batch_size)])


def check_labels(name: str, y: torch.Tensor, rows: int, n_classes: int) -> torch.Tensor:
    """Check that ``y`` holds ``rows`` integer labels in [0, n_classes)."""
    if not isinstance(y, torch.Tensor) or y.dtype.is_floating_point or y.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor of class indices, got {y!r:.80}")
    if y.dim() != 1 or y.shape[0] != rows:
        raise ValueError(f"{name} must hold one label per row ({rows}), got shape {tuple(y.shape)}")
    if rows and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise ValueError(
            f"{name} must lie in [0, {n_classes - 1}], got values in [{int(y.min())}, {int(y.max())}]"
        )
    return y.long()


class DigitClassifier(ClassEnergy):
    """A small CNN for 1 x 28 x 28 digits, pixels in [0, 1]:

        conv 3x3 32, ReLU, max-pool 2 -> conv 3x3 64, ReLU, max-pool 2 -> linear 128, ReLU
        -> dropout -> linear ``n_classes``.

    Inputs are standardized with MNIST's pixel mean and sd (0.1307, 0.3081) inside the
    network. :meth:`features` returns the 128 activations before the last layer (the
    feature space of FID-MNIST / KID-MNIST); :meth:`logits` the class scores (IS-MNIST).

    >>> net = DigitClassifier()
    >>> net.logits(torch.rand(2, 1, 28, 28)).shape, net.features(torch.rand(2, 784)).shape
    (torch.Size([2, 10]), torch.Size([2, 128]))
    """

    MEAN, STD = 0.1307, 0.3081
    rows_independent = True

    def __init__(
        self,
        event_shape: Sequence[int] = (1, 28, 28),
        n_classes: int = 10,
        *,
        channels: tuple[int, int] = (32, 64),
        width: int = 128,
        dropout: float = 0.25,
    ) -> None:
        super().__init__()
        shape = tuple(int(s) for s in event_shape)
        if shape != (1, 28, 28):
            raise ValueError(f"DigitClassifier takes 1 x 28 x 28 images, got event_shape {shape}")
        self.event_shape = shape
        self.n_classes = check_positive_int("n_classes", n_classes)
        c1, c2 = (check_positive_int("channels", c) for c in channels)
        self.width = check_positive_int("width", width)
        self.dropout = check_probability("dropout", dropout)
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.fc = nn.Linear(c2 * 7 * 7, self.width)
        self.head = nn.Linear(self.width, self.n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The 128 penultimate activations (after the ReLU), shape ``(batch, width)``."""
        h = (self._image_batch(x) - self.MEAN) / self.STD
        h = F.max_pool2d(F.relu(self.conv1(h)), 2)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        return F.relu(self.fc(h.flatten(1)))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.features_and_logits(x)[1]

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`features` and :meth:`logits` from one pass."""
        h = self.features(x)
        return h, self.head(F.dropout(h, self.dropout, self.training))


class TutorialCNNClassifier(ClassEnergy):
    """The EBM tutorial's CNN body (:func:`~nrf.energies.conv.tutorial_body`, Swish, strided
    convolutions: smooth and without pooling, as SGLD on the input needs) with
    ``n_classes`` logits: the network of nrf's MNIST JEM. Pixels in [-1, 1].

    >>> TutorialCNNClassifier().logits(torch.rand(2, 1, 28, 28)).shape
    torch.Size([2, 10])
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
        self.body, width = tutorial_body(self.event_shape, hidden, spectral)
        self.head = tutorial_head(width, self.n_classes, spectral)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer's activations."""
        out: torch.Tensor = self.body(self._image_batch(x))
        return out

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.features(x))
        return out
