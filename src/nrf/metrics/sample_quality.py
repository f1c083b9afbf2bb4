"""Sample quality of images on a feature network: Fréchet distance (FID), kernel distance
(KID) and the Inception-style score (IS), computed by torchmetrics on the features and
logits of a network nrf supplies.

With features phi(x) of real images (mean mu_r, covariance S_r) and of samples (mu_s, S_s):

    FID = ||mu_r - mu_s||^2 + tr(S_r + S_s - 2 (S_r S_s)^{1/2}),
    KID = MMD^2_unbiased with the kernel k(a, b) = (a.b / d + 1)^3, averaged over subsets,
    IS  = exp( E_x KL( p(y | x) || p(y) ) ),  p(y) = E_x p(y | x),  1 <= IS <= #classes.

The figures are only comparable between runs on the *same* feature network: a
:class:`FeatureNetwork` carries a name (``"MNIST"`` gives FID-MNIST, KID-MNIST, IS-MNIST,
never to be set beside Inception-network figures) and the sha256 of its weights, and every
:class:`SampleQuality` repeats both.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from nrf._checks import check_positive_int


class FeatureNetwork(nn.Module):
    """A frozen network with ``features(x)`` (FID, KID) and ``logits(x)`` (IS).

    Parameters
    ----------
    net:
        Any module with ``features`` and ``logits`` methods taking images in [0, 1]
        (e.g. a trained :class:`~nrf.energies.DigitClassifier`).
    name:
        What the figures are called after: ``"MNIST"`` -> ``FID-MNIST``.
    digest:
        The sha256 of the weights (reported with every figure).
    """

    def __init__(self, net: nn.Module, *, name: str, digest: str | None = None) -> None:
        super().__init__()
        for method in ("features", "logits"):
            if not callable(getattr(net, method, None)):
                raise TypeError(f"net must have a {method}(x) method, got {type(net).__name__}")
        if not name or not isinstance(name, str):
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        self.net: Any = net.eval().requires_grad_(False)
        self.name = name
        self.digest = digest
        self.train(False)

    def train(self, mode: bool = True) -> FeatureNetwork:
        """Stays in evaluation mode (dropout off) whatever a caller asks."""
        self.training = False
        self.net.eval()
        return self

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net.features(x)
        return out

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net.logits(x)
        return out

    @torch.no_grad()
    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both in one pass when the network offers ``features_and_logits``."""
        both = getattr(self.net, "features_and_logits", None)
        if callable(both):
            f, logit = both(x)
            return f.float(), logit.float()
        return self.features(x).float(), self.logits(x).float()


class _Given(nn.Module):
    """What torchmetrics calls as its "inception" module: the features are computed before
    (one pass of the network for FID, KID and IS), so it passes them on; ``num_features``
    is set so that torchmetrics does not probe it with a 299 x 299 image."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


@dataclass(frozen=True)
class SampleQuality:
    """FID / KID / IS of one sample set against one reference set."""

    fid: float
    kid: float
    kid_std: float
    inception_score: float
    inception_score_std: float
    n_samples: int
    n_reference: int
    kid_subset_size: int
    network: str
    digest: str | None

    def named(self) -> dict[str, float]:
        """The figures under their network's names: ``{"FID-MNIST": ..., "KID-MNIST": ...,
        "IS-MNIST": ...}`` (and the ``sd`` of KID and IS over subsets / splits); on the FID
        Inception network (``"Inception"``) the literature's plain FID, KID and IS."""
        n = "" if self.network == "Inception" else f"-{self.network}"
        return {
            f"FID{n}": self.fid, f"KID{n}": self.kid, f"KID{n} sd": self.kid_std,
            f"IS{n}": self.inception_score, f"IS{n} sd": self.inception_score_std,
        }  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def as_unit_images(name: str, x: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
    """``x`` (float, pixels in ``value_range``) mapped to [0, 1] and clipped there, as images
    are when shown; NaN / inf or an empty batch raise ``ValueError`` naming ``name``."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{name} must be a float tensor of images, got {x!r:.80}")
    if x.dim() < 2 or x.shape[0] < 2:
        raise ValueError(f"{name} must hold at least 2 images (batch first), got shape {tuple(x.shape)}")
    bad = int((~torch.isfinite(x)).sum())
    if bad:
        raise ValueError(f"{name} holds {bad} non-finite values (NaN or inf)")
    lo, hi = (float(v) for v in value_range)
    if not lo < hi:
        raise ValueError(f"value_range must be (low, high) with low < high, got {value_range!r}")
    return ((x.float() - lo) / (hi - lo)).clamp_(0.0, 1.0)


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """torchmetrics draws KID subsets and IS splits from torch's global stream: fix it,
    and leave the caller's stream as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@contextmanager
def _quiet() -> Iterator[None]:
    """torchmetrics warns that KID and IS keep every feature in memory (by design here) and
    that an sd over one IS split has no degrees of freedom (reported as 0)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Metric `.*` will save all extracted features")
        warnings.filterwarnings("ignore", message=r"std\(\): degrees of freedom")
        yield


class SampleQualityMeter:
    """FID / KID / IS of sample sets against one reference set, whose features are
    computed once (for evaluations repeated over a training run).

    Parameters
    ----------
    network:
        The :class:`FeatureNetwork`.
    reference:
        Real images (e.g. the test set), pixels in ``value_range``.
    value_range:
        The pixel range of ``reference`` and of the samples (``(-1, 1)`` for models trained
        on symmetric pixels); values are mapped to [0, 1] and clipped.
    kid_subsets, kid_subset_size:
        KID is averaged over this many random subsets of this size (capped at the number
        of images of either set).
    is_splits:
        IS is computed on this many splits of the samples (mean and sd reported; the sd of
        one split is given as 0).
    batch_size:
        Images per forward pass of the network.
    seed:
        Seed of the KID subsets and IS splits.
    """

    def __init__(
        self,
        network: FeatureNetwork,
        reference: torch.Tensor,
        *,
        value_range: tuple[float, float] = (0.0, 1.0),
        kid_subsets: int = 100,
        kid_subset_size: int = 1000,
        is_splits: int = 10,
        batch_size: int = 500,
        seed: int = 0,
    ) -> None:
        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchmetrics.image.inception import InceptionScore
        from torchmetrics.image.kid import KernelInceptionDistance

        if not isinstance(network, FeatureNetwork):
            raise TypeError(f"network must be a FeatureNetwork, got {type(network).__name__}")
        self.network = network
        self.value_range = value_range
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.kid_subsets = check_positive_int("kid_subsets", kid_subsets)
        self.kid_subset_size = check_positive_int("kid_subset_size", kid_subset_size)
        self.is_splits = check_positive_int("is_splits", is_splits)
        self.seed = int(seed)
        ref = as_unit_images("reference", reference, value_range)
        self.n_reference = int(ref.shape[0])
        feats = torch.cat([network.features_and_logits(c)[0] for c in ref.split(self.batch_size)])
        with _quiet():
            self._fid = FrechetInceptionDistance(
                feature=_Given(int(feats.shape[1])), reset_real_features=False
            )
            self._kid = KernelInceptionDistance(
                feature=_Given(int(feats.shape[1])), reset_real_features=False, subsets=self.kid_subsets,
                subset_size=min(self.kid_subset_size, self.n_reference),
            )  # fmt: skip
            self._is = InceptionScore(feature=_Given(0), splits=self.is_splits)
        with torch.no_grad():
            self._fid.update(feats, real=True)
            self._kid.update(feats, real=True)

    def __call__(self, samples: torch.Tensor) -> SampleQuality:
        """The figures of ``samples`` (pixels in ``value_range``) against the reference."""
        x = as_unit_images("samples", samples, self.value_range)
        n = int(x.shape[0])
        if n < self.is_splits:
            raise ValueError(f"samples: {n} images cannot be cut into is_splits = {self.is_splits} splits")
        subset = min(self.kid_subset_size, n, self.n_reference)
        self._fid.reset()
        self._kid.reset()
        self._is.reset()
        self._kid.subset_size = subset
        with torch.no_grad():
            for chunk in x.split(self.batch_size):
                feats, logits = self.network.features_and_logits(chunk)
                self._fid.update(feats, real=False)
                self._kid.update(feats, real=False)
                self._is.update(logits)
            with _seeded(self.seed), _quiet():
                fid = float(self._fid.compute())
                kid, kid_std = (float(v) for v in self._kid.compute())
                is_mean, is_std = (float(v) for v in self._is.compute())
        if self.is_splits == 1 and math.isnan(is_std):
            is_std = 0.0
        return SampleQuality(
            fid=fid, kid=kid, kid_std=kid_std, inception_score=is_mean, inception_score_std=is_std,
            n_samples=n, n_reference=self.n_reference, kid_subset_size=subset,
            network=self.network.name, digest=self.network.digest,
        )  # fmt: skip


def sample_quality(
    samples: torch.Tensor, reference: torch.Tensor, network: FeatureNetwork, **options: Any
) -> SampleQuality:
    """FID / KID / IS of ``samples`` against ``reference`` on ``network`` (options: those
    of :class:`SampleQualityMeter`)."""
    return SampleQualityMeter(network, reference, **options)(samples)


def reference_quality(
    network: FeatureNetwork,
    train: torch.Tensor,
    test: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    **options: Any,
) -> dict[str, SampleQuality]:
    """The figures every table prints beside its models, against the ``test`` images:
    ``"test"`` (the test set against itself: FID 0, the IS of real data), ``"train"`` (as
    many training images as test images: the floor a perfect sampler reaches), ``"uniform
    noise"`` (pixels uniform in the value range: what a useless sampler scores)."""
    meter = SampleQualityMeter(network, test, **options)
    n = int(test.shape[0])
    if train.shape[0] < n:
        raise ValueError(f"train must hold at least as many images as test ({n}), got {train.shape[0]}")
    rows = torch.randperm(train.shape[0], generator=generator)[:n]
    lo, hi = meter.value_range
    noise = lo + (hi - lo) * torch.rand(test.shape, generator=generator)
    return {"test": meter(test), "train": meter(train[rows]), "uniform noise": meter(noise)}
