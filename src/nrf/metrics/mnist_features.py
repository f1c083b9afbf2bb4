"""The feature network of FID-MNIST / KID-MNIST / IS-MNIST: a :class:`DigitClassifier`
trained by a fixed recipe on the MNIST training set, kept in the data folder.

Recipe (:data:`RECIPE`): pixels / 255 in [0, 1]; cross-entropy (``classifier`` objective)
through nrf's training loop; Adam lr 1e-3 under cosine annealing; batch 128; 3 epochs;
seed 0. The build refuses a network below :data:`MIN_ACCURACY` on the MNIST test set.

The weights and a record of the recipe, the test accuracy and the versions used are written
atomically as one checkpoint folder ``<data root>/mnist-features/`` (safetensors + JSON,
with the sha256 of both, see :mod:`nrf.training.checkpoint`); loading verifies the sha256
and refuses an altered or foreign file. Figures computed on the network carry that sha256:
two runs compare only when it is the same.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nrf.data import load_mnist
from nrf.data.batch import Batch
from nrf.data.paths import data_roots, download_root
from nrf.energies.classifier import DigitClassifier
from nrf.metrics.sample_quality import FeatureNetwork
from nrf.objectives.classifier import Classifier
from nrf.training.checkpoint import CheckpointError, is_checkpoint, load_checkpoint, save_checkpoint
from nrf.training.loop import Loop, Streams

SUBDIR = "mnist-features"
KIND = "nrf-mnist-features"
MIN_ACCURACY = 0.99
RECIPE: dict[str, Any] = {
    "network": {"name": "DigitClassifier", "channels": [32, 64], "width": 128, "dropout": 0.25},
    "objective": "classifier",
    "optimizer": {"name": "adam", "lr": 1e-3},
    "lr_schedule": "cosine",
    "batch_size": 128,
    "epochs": 3,
    "seed": 0,
    "pixels": "x / 255 in [0, 1]",
}


class FeatureNetworkError(RuntimeError):
    """The cached feature network is missing, altered, of another recipe, or below the
    accuracy the recipe promises."""


def _images(split: str, root: str | os.PathLike[str] | None) -> tuple[torch.Tensor, torch.Tensor]:
    data = load_mnist(split, root)
    x = torch.from_numpy(data.images.astype(np.float32) / 255.0).unsqueeze(1)
    return x, torch.from_numpy(data.labels.astype(np.int64))


def _network() -> DigitClassifier:
    net = RECIPE["network"]
    return DigitClassifier(channels=tuple(net["channels"]), width=net["width"], dropout=net["dropout"])


def train_feature_network(
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    *,
    progress: bool = False,
) -> tuple[DigitClassifier, float]:
    """Train the recipe's network on ``train`` = (images in [0, 1], labels); returns it and
    its accuracy on ``test``."""
    streams = Streams.from_user_seed(RECIPE["seed"])
    x, y = train
    per_epoch = -(-x.shape[0] // RECIPE["batch_size"])
    with torch.random.fork_rng(devices=[]):  # initial weights and dropout masks: the global stream
        torch.manual_seed(streams.seed)
        net = _network()
        loop = Loop(
            Classifier(net), Batch(x, y), {"energy": RECIPE["optimizer"]}, batch_size=RECIPE["batch_size"],
            steps=RECIPE["epochs"] * per_epoch, generator=streams.sampler(torch.device("cpu")),
            data_generator=streams.data(), lr_schedule=RECIPE["lr_schedule"],
        )  # fmt: skip
        loop.run(progress=progress, desc="mnist-features")
    accuracy = float((net.predict(test[0]) == test[1]).float().mean())
    return net.eval(), accuracy


def cache_folder(root: str | os.PathLike[str] | None = None) -> Path | None:
    """The first ``<root>/mnist-features`` checkpoint found on the data search path."""
    for base in data_roots(root):
        folder = base / SUBDIR
        if is_checkpoint(folder):
            return folder
    return None


def prepare_feature_network(
    root: str | os.PathLike[str] | None = None,
    *,
    force: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> Path:
    """Build the feature network from the MNIST files on the data search path and write it
    to ``<root or $NRF_DATA_DIR or ~/.cache/nrf>/mnist-features`` (kept when a verified copy
    exists there, unless ``force``)."""
    target = download_root(root) / SUBDIR
    if is_checkpoint(target) and not force:
        load_feature_network(target.parent)  # verify it
        log(f"mnist-features: verified copy in {target}")
        return target
    start = time.time()
    train, test = _images("train", root), _images("test", root)
    net, accuracy = train_feature_network(train, test, progress=progress)
    if accuracy < MIN_ACCURACY:
        raise FeatureNetworkError(
            f"the mnist-features recipe reached test accuracy {accuracy:.4f}, below {MIN_ACCURACY}; "
            "not writing it"
        )
    state = {
        "kind": KIND, "recipe": RECIPE, "test_accuracy": accuracy, "seconds": time.time() - start,
        "torch": torch.__version__, "python": platform.python_version(),
    }  # fmt: skip
    save_checkpoint(target, {f"model/{k}": v for k, v in net.state_dict().items()}, state)
    log(f"mnist-features: test accuracy {accuracy:.4f}, written to {target}")
    return target


def load_feature_network(
    root: str | os.PathLike[str] | None = None, *, build: bool = False
) -> FeatureNetwork:
    """The verified feature network ``FeatureNetwork(name="MNIST")`` from the data search
    path (built first when missing and ``build``; else a :class:`FeatureNetworkError`
    that says how to build it)."""
    folder = cache_folder(root)
    if folder is None:
        if not build:
            tried = ", ".join(str(r / SUBDIR) for r in data_roots(root))
            raise FeatureNetworkError(
                f"no mnist-features network found (tried {tried}); build it with "
                "`nrf data prepare mnist-features` (needs the MNIST files, about 5 minutes on 2 cores)"
            )
        folder = prepare_feature_network(root, progress=False)
    try:
        tensors, state = load_checkpoint(folder)
    except CheckpointError as exc:
        raise FeatureNetworkError(
            f"{exc}; rebuild it with `nrf data prepare mnist-features --force`"
        ) from None
    if state.get("kind") != KIND or state.get("recipe") != RECIPE:
        raise FeatureNetworkError(
            f"{folder}: not a feature network of this nrf version's recipe; rebuild it with "
            "`nrf data prepare mnist-features --force`"
        )
    net = _network()
    net.load_state_dict({k[len("model/") :]: v for k, v in tensors.items()})
    return FeatureNetwork(net, name="MNIST", digest=str(state["sha256"]))
