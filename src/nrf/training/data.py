"""Training data from a config section, checked before any training starts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nrf.data import bimodal1d, gmm32, grid25, load_cifar10, load_digits, load_kddcup99, load_mnist, ring8
from nrf.data.errors import DataFormatError
from nrf.data.tabular import read_rows
from nrf.data.trajectories import TRAJECTORY_SETS, load_trajectories, transition_windows
from nrf.training.config import ConfigError, DataSection

SYNTHETIC = {"gmm32": gmm32, "ring8": ring8, "grid25": grid25, "bimodal1d": bimodal1d}
IMAGES = ("digits", "mnist", "cifar10")
FILES = ("npy", "csv")
NAMES = (*SYNTHETIC, *IMAGES, "kddcup99", *TRAJECTORY_SETS, *FILES)


@dataclass
class TrainingData:
    """Float tensors ready for the trainer, plus what evaluation needs to know."""

    train: torch.Tensor
    validation: torch.Tensor | None
    kind: str  # "points" (2-D or 1-D), "images", "vectors", "transitions" (labels: contexts)
    centres: torch.Tensor | None = None
    std: float | None = None
    train_labels: torch.Tensor | None = None
    validation_labels: torch.Tensor | None = None


IMAGE_SCALES = ("unit", "symmetric", "none", "binary", "binary-stochastic")
IMAGE_PEAKS = {"digits": 16.0, "mnist": 255.0, "cifar10": 255.0}  # the largest raw pixel value


def scale_raw_images(section: DataSection, images: np.ndarray, seed: int = 0) -> np.ndarray:
    """Raw pixels (0 .. the set's peak, as its files hold them) of an image run's data set
    in the model's units: the run's ``data.scale``, exactly as its training images."""
    if section.name not in IMAGE_PEAKS:
        raise ValueError(f"data.name {section.name!r} is not an image set ({list(IMAGE_PEAKS)})")
    return _scale_images(images, IMAGE_PEAKS[section.name], section.scale, seed)


def _scale_images(images: np.ndarray, peak: float, scale: str, seed: int = 0) -> np.ndarray:
    """Pixels / peak in [0, 1] (``unit``), [-1, 1] (``symmetric``), raw (``none``), or binary
    for Bernoulli RBMs: ``binary`` thresholds [0, 1] at 0.5, ``binary-stochastic`` draws each
    pixel once from Bernoulli(pixel) with a stream of ``seed`` (the data fixed for the run)."""
    x = images.astype(np.float32) / peak
    if scale == "unit":
        return x
    if scale == "symmetric":
        return 2.0 * x - 1.0
    if scale == "none":
        return images.astype(np.float32)
    if scale == "binary":
        return (x > 0.5).astype(np.float32)
    if scale == "binary-stochastic":
        gen = torch.Generator().manual_seed(seed + 7)
        return torch.bernoulli(torch.from_numpy(x), generator=gen).numpy()
    raise ConfigError(f"data.scale: expected one of {list(IMAGE_SCALES)}, got {scale!r}")


def _read_file(kind: str, path: str | None) -> np.ndarray:
    """The rows of ``data.path`` (a ``.npy`` or ``.csv`` file, by ``kind``) as float32.

    A 1-D array is read as one value per row (the caller makes it ``(n, 1)``). Any
    problem with the file raises :class:`ConfigError` naming ``data.path`` and the file;
    NaN and inf raise :func:`check_finite`'s ``ValueError``, naming the file too.
    """
    if path is None:
        raise ConfigError(f"data.path: required for data.name = {kind!r}")
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"data.path: file not found: {p}")
    try:
        arr = read_rows(p, kind, min_ndim=1, finite=False)
    except DataFormatError as exc:
        raise ConfigError(f"data.path: {exc}") from None
    check_finite(f"data.path {p}", torch.from_numpy(arr))
    return arr


def check_finite(name: str, x: torch.Tensor) -> None:
    """Refuse NaN / inf in data, with the count and the first offending row."""
    bad = ~torch.isfinite(x.reshape(x.shape[0], -1)).all(dim=1)
    if bool(bad.any()):
        count = int((~torch.isfinite(x)).sum())
        first = int(torch.nonzero(bad)[0])
        raise ValueError(f"{name} holds {count} non-finite values (NaN or inf); the first is in row {first}")


def load_training_data(section: DataSection, seed: int) -> TrainingData:
    """Load, filter, scale and split the data described by ``section``.

    ``data.limit`` (when set) keeps that many rows of the shuffled data and must be >= 1;
    the split must leave at least one training row.
    """
    if section.name not in NAMES:
        raise ConfigError(f"data.name: expected one of {list(NAMES)}, got {section.name!r}")
    limit = section.limit
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"data.limit: expected >= 1 (or unset), got {limit!r}")
    gen = torch.Generator().manual_seed(seed)
    centres = std = None
    labels = None
    kind = "vectors"
    if section.name in SYNTHETIC:
        mix = SYNTHETIC[section.name](generator=gen)  # type: ignore[operator]
        x, labels, centres, std, kind = mix.x, mix.labels, mix.centres, mix.std, "points"
    elif section.name in IMAGES:
        peak = IMAGE_PEAKS[section.name]
        if section.name == "digits":
            data = load_digits()
        elif section.name == "mnist":
            data = load_mnist("train", section.root)
        else:
            data = load_cifar10("train", section.root)
        images = data.images if data.images.ndim == 4 else data.images[:, None]
        if images.shape[-1] == 3:
            images = images.transpose(0, 3, 1, 2)
        x = torch.from_numpy(_scale_images(images, peak, section.scale, seed).copy())
        labels, kind = torch.from_numpy(data.labels.astype(np.int64)), "images"
    elif section.name in TRAJECTORY_SETS:  # rows: next states, labels: their contexts
        for key in ("trajectories", "trajectory_steps"):
            value = getattr(section, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"data.{key}: expected an integer >= 1 (or unset), got {value!r}")
        trajectories = load_trajectories(
            section.name, n_train=section.trajectories, n_test=1, steps=section.trajectory_steps, seed=seed
        )
        contexts, nxt = transition_windows(trajectories.train, trajectories.train_actions)
        x, labels, kind = torch.from_numpy(nxt), torch.from_numpy(contexts), "transitions"
    elif section.name == "kddcup99":
        kdd = load_kddcup99(section.root, unknown=section.unknown)
        x, labels = torch.from_numpy(kdd.features), torch.from_numpy(kdd.labels)
    else:
        x = torch.from_numpy(_read_file(section.name, section.path))
        if x.dim() == 1:
            x = x.unsqueeze(1)
    if section.labels is not None:
        if kind == "transitions":
            raise ConfigError(
                f"data.labels: the transitions of {section.name!r} have contexts, not class labels"
            )
        if labels is None:
            raise ConfigError(f"data.labels: data set {section.name!r} has no labels to select")
        keep = torch.isin(labels, torch.tensor(section.labels))
        x, labels = x[keep], labels[keep]
        if x.shape[0] == 0:
            raise ConfigError(f"data.labels: no rows have labels {section.labels}")
    check_finite(f"training data ({section.name})", x)
    perm = torch.randperm(x.shape[0], generator=gen)
    x = x[perm]
    if labels is not None:
        labels = labels[perm]
    if section.limit is not None:
        x = x[: section.limit]
        labels = None if labels is None else labels[: section.limit]
    n_val = round(section.validation_fraction * x.shape[0])
    if n_val >= x.shape[0]:
        raise ConfigError(
            f"data.validation_fraction = {section.validation_fraction} leaves no training rows "
            f"out of {x.shape[0]}"
        )
    validation = x[:n_val] if n_val else None
    return TrainingData(
        train=x[n_val:].contiguous(), validation=validation, kind=kind, centres=centres, std=std,
        train_labels=None if labels is None else labels[n_val:].contiguous(),
        validation_labels=None if labels is None or not n_val else labels[:n_val],
    )  # fmt: skip
