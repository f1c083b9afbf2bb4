"""The Inception-v3 network of FID (Heusel et al., 2017), for figures on CIFAR-10 and
ImageNet-sized images that compare with the literature's FID, KID and Inception score.

:class:`FIDInceptionV3` is the network of the TensorFlow FID code (the 2015-12-05 Inception
graph) as laid out by pytorch-fid: Inception v3 (Szegedy et al., 2016) without the
auxiliary head, a 1008-way classifier, and three departures from the paper's network that
the ported weights need: the average pools inside the 35 x 35, 17 x 17 and first 8 x 8
mixed blocks leave the zero padding out of their means (``count_include_pad=False``), and
the last mixed block pools by maximum instead of average. Each convolution has no bias and
is followed by batch normalization (eps 1e-3) and a ReLU. Images in [0, 1] (grey images are
repeated over three channels) are resized to 299 x 299 bilinearly (``align_corners=False``)
and mapped to [-1, 1]; :meth:`~FIDInceptionV3.features` are the 2,048 globally averaged
activations (FID, KID), :meth:`~FIDInceptionV3.logits` the 1,008 class scores (IS).
Bilinear resizing in torch differs slightly from TensorFlow's, so figures can differ from
the TensorFlow code's in the first decimal.

nrf never downloads the weights: :func:`convert_inception_weights` reads a local copy of
pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` (a state dict; read by torch's
tensors-only loader, ``weights_only=True``), checks its sha256 against the prefix that the
published name carries (or a full digest the caller gives), checks every tensor's name and
shape, and writes the weights as a checkpoint folder ``<data root>/inception-fid/``
(safetensors + JSON with their sha256). :func:`load_inception_network` verifies that
folder and returns a :class:`~nrf.metrics.sample_quality.FeatureNetwork` named
``"Inception"``, whose figures are called FID, KID and IS.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nrf.data.paths import data_roots, download_root
from nrf.metrics.sample_quality import FeatureNetwork
from nrf.training.checkpoint import CheckpointError, is_checkpoint, load_checkpoint, save_checkpoint

SUBDIR = "inception-fid"
KIND = "nrf-inception-fid"
PYTORCH_FID_FILE = "pt_inception-2015-12-05-6726825d.pth"
"""The published name of pytorch-fid's port of the TensorFlow FID weights."""
INPUT_SIZE = 299
N_CLASSES = 1008
BLOCKS = tuple(f"Mixed_{b}" for b in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"))


class InceptionWeightsError(RuntimeError):
    """The Inception weights are missing, of another digest, or not the FID network's."""


class _Conv(nn.Module):
    """Convolution without bias, batch norm (eps 1e-3), ReLU."""

    def __init__(self, n_in: int, n_out: int, kernel: int | tuple[int, int], **kwargs: Any) -> None:
        super().__init__()
        self.conv = nn.Conv2d(n_in, n_out, kernel, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(n_out, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool(x: torch.Tensor) -> torch.Tensor:
    """3 x 3 average pool, stride 1, the padding left out of the mean (TensorFlow's)."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class _Mixed35(nn.Module):
    """35 x 35 block: 1x1 (64) | 1x1 (48) -> 5x5 (64) | 1x1 (64) -> 3x3 (96) -> 3x3 (96) |
    pool -> 1x1 (``pool_features``)."""

    def __init__(self, n_in: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = _Conv(n_in, 64, 1)
        self.branch5x5_1 = _Conv(n_in, 48, 1)
        self.branch5x5_2 = _Conv(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = _Conv(n_in, 64, 1)
        self.branch3x3dbl_2 = _Conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _Conv(96, 96, 3, padding=1)
        self.branch_pool = _Conv(n_in, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch1x1(x),
            self.branch5x5_2(self.branch5x5_1(x)),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(_avg_pool(x)),
        ], 1)  # fmt: skip


class _Reduce35(nn.Module):
    """35 -> 17: 3x3 stride 2 (384) | 1x1 (64) -> 3x3 (96) -> 3x3 stride 2 (96) | max pool."""

    def __init__(self, n_in: int) -> None:
        super().__init__()
        self.branch3x3 = _Conv(n_in, 384, 3, stride=2)
        self.branch3x3dbl_1 = _Conv(n_in, 64, 1)
        self.branch3x3dbl_2 = _Conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _Conv(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch3x3(x),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            F.max_pool2d(x, 3, stride=2),
        ], 1)  # fmt: skip


class _Mixed17(nn.Module):
    """17 x 17 block with factorized 7 x 7 convolutions of ``c7`` channels: 1x1 (192) |
    1x1 -> 1x7 -> 7x1 (192) | 1x1 -> 7x1 -> 1x7 -> 7x1 -> 1x7 (192) | pool -> 1x1 (192)."""

    def __init__(self, n_in: int, c7: int) -> None:
        super().__init__()
        row, col = {"kernel": (1, 7), "padding": (0, 3)}, {"kernel": (7, 1), "padding": (3, 0)}
        self.branch1x1 = _Conv(n_in, 192, 1)
        self.branch7x7_1 = _Conv(n_in, c7, 1)
        self.branch7x7_2 = _Conv(c7, c7, **row)
        self.branch7x7_3 = _Conv(c7, 192, **col)
        self.branch7x7dbl_1 = _Conv(n_in, c7, 1)
        self.branch7x7dbl_2 = _Conv(c7, c7, **col)
        self.branch7x7dbl_3 = _Conv(c7, c7, **row)
        self.branch7x7dbl_4 = _Conv(c7, c7, **col)
        self.branch7x7dbl_5 = _Conv(c7, 192, **row)
        self.branch_pool = _Conv(n_in, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            d = layer(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_avg_pool(x))], 1)


class _Reduce17(nn.Module):
    """17 -> 8: 1x1 (192) -> 3x3 stride 2 (320) | 1x1 -> 1x7 -> 7x1 -> 3x3 stride 2 (192) |
    max pool."""

    def __init__(self, n_in: int) -> None:
        super().__init__()
        self.branch3x3_1 = _Conv(n_in, 192, 1)
        self.branch3x3_2 = _Conv(192, 320, 3, stride=2)
        self.branch7x7x3_1 = _Conv(n_in, 192, 1)
        self.branch7x7x3_2 = _Conv(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = _Conv(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = _Conv(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b7, F.max_pool2d(x, 3, stride=2)], 1)


class _Mixed8(nn.Module):
    """8 x 8 block: 1x1 (320) | 1x1 (384) -> [1x3, 3x1] (2 x 384) | 1x1 (448) -> 3x3 (384)
    -> [1x3, 3x1] (2 x 384) | pool (``"avg"`` or ``"max"``) -> 1x1 (192)."""

    def __init__(self, n_in: int, pool: str) -> None:
        super().__init__()
        row, col = {"kernel": (1, 3), "padding": (0, 1)}, {"kernel": (3, 1), "padding": (1, 0)}
        self.branch1x1 = _Conv(n_in, 320, 1)
        self.branch3x3_1 = _Conv(n_in, 384, 1)
        self.branch3x3_2a = _Conv(384, 384, **row)
        self.branch3x3_2b = _Conv(384, 384, **col)
        self.branch3x3dbl_1 = _Conv(n_in, 448, 1)
        self.branch3x3dbl_2 = _Conv(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = _Conv(384, 384, **row)
        self.branch3x3dbl_3b = _Conv(384, 384, **col)
        self.branch_pool = _Conv(n_in, 192, 1)
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_1(x)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = _avg_pool(x) if self.pool == "avg" else F.max_pool2d(x, 3, stride=1, padding=1)
        return torch.cat([
            self.branch1x1(x),
            self.branch3x3_2a(b3), self.branch3x3_2b(b3),
            self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d),
            self.branch_pool(pooled),
        ], 1)  # fmt: skip


class FIDInceptionV3(nn.Module):
    """Inception v3 as FID uses it (see the module docstring); parameter names follow
    torchvision's / pytorch-fid's, so their state dicts load as they are.

    >>> net = FIDInceptionV3().eval()
    >>> net.features(torch.rand(2, 1, 28, 28)).shape
    torch.Size([2, 2048])
    """

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = _Conv(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = _Conv(32, 32, 3)
        self.Conv2d_2b_3x3 = _Conv(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = _Conv(64, 80, 1)
        self.Conv2d_4a_3x3 = _Conv(80, 192, 3)
        self.Mixed_5b = _Mixed35(192, 32)
        self.Mixed_5c = _Mixed35(256, 64)
        self.Mixed_5d = _Mixed35(288, 64)
        self.Mixed_6a = _Reduce35(288)
        self.Mixed_6b = _Mixed17(768, 128)
        self.Mixed_6c = _Mixed17(768, 160)
        self.Mixed_6d = _Mixed17(768, 160)
        self.Mixed_6e = _Mixed17(768, 192)
        self.Mixed_7a = _Reduce17(768)
        self.Mixed_7b = _Mixed8(1280, "avg")
        self.Mixed_7c = _Mixed8(2048, "max")
        self.fc = nn.Linear(2048, N_CLASSES)

    @staticmethod
    def prepare(x: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1], ``(n, 1 or 3, h, w)``, as the network's 3 x 299 x 299 input in [-1, 1]."""
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"images must be (n, 1 or 3, height, width), got shape {tuple(x.shape)}")
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = F.interpolate(x.float(), size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return 2 * x - 1

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The 2,048 pooled activations of images ``x`` in [0, 1]."""
        h = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(self.prepare(x))))
        h = F.max_pool2d(h, 3, stride=2)
        h = F.max_pool2d(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(h)), 3, stride=2)
        for name in BLOCKS:
            h = getattr(self, name)(h)
        return h.mean(dim=(2, 3))

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`features` and the 1,008 class scores from one pass."""
        f = self.features(x)
        return f, self.fc(f)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The 1,008 class scores (the Inception score's classifier)."""
        return self.features_and_logits(x)[1]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _expected_tensors() -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor the weights must hold (batch norms' step counters aside)."""
    state = FIDInceptionV3().state_dict()
    return {k: tuple(v.shape) for k, v in state.items() if not k.endswith("num_batches_tracked")}


def convert_inception_weights(
    source: str | os.PathLike[str],
    root: str | os.PathLike[str] | None = None,
    *,
    sha256: str | None = None,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> Path:
    """Check pytorch-fid's weight file ``source`` and write it as the checkpoint folder
    ``<root or $NRF_DATA_DIR or ~/.cache/nrf>/inception-fid`` (kept when a verified copy is
    there, unless ``force``).

    The file's sha256 must equal ``sha256`` when given, else begin with the hex digits
    before the extension of the published name (``-6726825d.pth``); its tensors must be
    exactly :class:`FIDInceptionV3`'s, by name and shape, and finite.
    """
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"source: no file {path} (pytorch-fid's {PYTORCH_FID_FILE})")
    target = download_root(root) / SUBDIR
    if is_checkpoint(target) and not force:
        load_inception_network(target.parent)
        log(f"inception-fid: verified copy in {target}")
        return target
    digest = _sha256(path)
    if sha256 is not None:
        if not re.fullmatch(r"[0-9a-f]{64}", sha256.lower()):
            raise ValueError(f"sha256 must be 64 hex digits, got {sha256!r}")
        if digest != sha256.lower():
            raise InceptionWeightsError(f"{path}: sha256 {digest}, expected {sha256.lower()}")
    else:
        prefix = PYTORCH_FID_FILE.rsplit("-", 1)[1].split(".")[0]
        if not digest.startswith(prefix):
            raise InceptionWeightsError(
                f"{path}: sha256 {digest} does not begin with {prefix}, the digest prefix of the published "
                f"{PYTORCH_FID_FILE}; pass its full sha256 (--sha256) if you trust this file"
            )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # the tensors-only loader refuses anything else
        raise InceptionWeightsError(f"{path}: not a state dict of tensors ({str(exc)[:200]})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InceptionWeightsError(f"{path}: not a state dict of tensors")
    tensors = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    expected = _expected_tensors()
    missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    wrong = [k for k in expected if k in tensors and tuple(tensors[k].shape) != expected[k]]
    if missing or extra or wrong:
        raise InceptionWeightsError(
            f"{path}: not the FID Inception network (missing {missing[:3]}, unexpected {extra[:3]}, "
            f"wrong shapes {wrong[:3]}; {len(missing)} / {len(extra)} / {len(wrong)} in all)"
        )
    bad = [k for k, v in tensors.items() if not bool(torch.isfinite(v).all())]
    if bad:
        raise InceptionWeightsError(f"{path}: non-finite values in {bad[:3]}")
    record = {"kind": KIND, "source": path.name, "source_sha256": digest, "torch": torch.__version__}
    save_checkpoint(target, {f"model/{k}": v.float().contiguous() for k, v in tensors.items()}, record)
    log(f"inception-fid: {path.name} (sha256 {digest[:12]}) written to {target}")
    return target


def load_inception_network(root: str | os.PathLike[str] | None = None) -> FeatureNetwork:
    """The verified FID Inception network from ``<data root>/inception-fid`` as a
    :class:`~nrf.metrics.sample_quality.FeatureNetwork` named ``"Inception"``; a missing
    or altered folder raises :class:`InceptionWeightsError` saying how to make it."""
    folder = next((b / SUBDIR for b in data_roots(root) if is_checkpoint(b / SUBDIR)), None)
    if folder is None:
        tried = ", ".join(str(r / SUBDIR) for r in data_roots(root))
        raise InceptionWeightsError(
            f"no Inception weights found (tried {tried}); nrf does not download them: get pytorch-fid's "
            f"{PYTORCH_FID_FILE} and run `nrf data prepare inception --from FILE`"
        )
    try:
        tensors, state = load_checkpoint(folder)
    except CheckpointError as exc:
        raise InceptionWeightsError(f"{exc}; convert the weights again with --force") from None
    if state.get("kind") != KIND:
        raise InceptionWeightsError(f"{folder}: not nrf's Inception weights (kind {state.get('kind')!r})")
    net = FIDInceptionV3()
    net.load_state_dict({k[len("model/") :]: v for k, v in tensors.items()}, strict=False)
    loaded = {k[len("model/") :] for k in tensors}
    if loaded != set(_expected_tensors()):
        raise InceptionWeightsError(f"{folder}: does not hold the FID Inception network's tensors")
    return FeatureNetwork(net, name="Inception", digest=str(state["source_sha256"]))
