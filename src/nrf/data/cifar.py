"""CIFAR-10 "python version" batches, read without trusting pickle.

The official batches are Python pickles of a dict with ``b"data"`` (a uint8 numpy array
of shape ``(10000, 3072)``) and ``b"labels"`` (a list of ints). A plain
``pickle.load`` would run any code a tampered file names, so :class:`RestrictedUnpickler`
resolves only the few numpy globals needed to rebuild an array (and the codec that
Python 3 uses for bytes in protocol 2) and refuses everything else; the arrays it builds
must have a numeric dtype.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from nrf._checks import check_choice
from nrf.data.errors import DataFormatError
from nrf.data.mnist import ImageSet
from nrf.data.paths import find_file

SUBDIR = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES = ("test_batch",)
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),  # arrays pickled with protocol 5
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # bytes pickled by Python 3 with protocol 2
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds plain containers, bytes, strings, numbers and
    numeric numpy arrays; any other global (a class or function) raises
    :class:`pickle.UnpicklingError`."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def restricted_load(path: str | os.PathLike[str]) -> Any:
    """Unpickle ``path`` with :class:`RestrictedUnpickler` (latin-1 for Python 2 strings)."""
    p = Path(path)
    data = p.read_bytes()
    try:
        obj = RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise DataFormatError(p, f"not a valid CIFAR pickle batch ({exc})") from exc
    _check_numeric(p, obj)
    return obj


def _check_numeric(path: Path, obj: Any) -> None:
    if isinstance(obj, np.ndarray) and not (np.issubdtype(obj.dtype, np.number) or obj.dtype == np.bool_):
        raise DataFormatError(path, f"array of dtype {obj.dtype} refused (numeric arrays only)")
    if isinstance(obj, dict):
        for value in obj.values():
            _check_numeric(path, value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            _check_numeric(path, value)


def _key(d: dict[Any, Any], name: str) -> Any:
    for k in (name.encode(), name):
        if k in d:
            return d[k]
    return None


def read_batch(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read one batch file into images ``(n, 32, 32, 3)`` uint8 and labels ``(n,)`` int64."""
    p = Path(path)
    obj = restricted_load(p)
    if not isinstance(obj, dict):
        raise DataFormatError(p, f"expected a dict, got {type(obj).__name__}")
    data, labels = _key(obj, "data"), _key(obj, "labels")
    if data is None or labels is None:
        raise DataFormatError(p, "missing 'data' or 'labels' entry")
    data = np.asarray(data)
    labels = np.asarray(labels, dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataFormatError(p, f"'data' must be uint8 of shape (n, 3072), got {data.dtype} {data.shape}")
    if labels.shape != (data.shape[0],):
        raise DataFormatError(p, f"{labels.shape[0]} labels for {data.shape[0]} images")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataFormatError(p, f"labels must be 0-9, found range [{labels.min()}, {labels.max()}]")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels


def load_cifar10(split: str = "train", root: str | os.PathLike[str] | None = None) -> ImageSet:
    """Load CIFAR-10 ``"train"`` (50,000) or ``"test"`` (10,000) from the python batches.

    Files are looked up under ``cifar-10-batches-py/`` (see :mod:`nrf.data.paths`).
    Returns images ``(n, 32, 32, 3)`` uint8 (HWC) and labels ``(n,)`` int64.
    """
    check_choice("split", split, ("train", "test"))
    names = TRAIN_BATCHES if split == "train" else TEST_BATCHES
    parts = [read_batch(find_file("cifar10", SUBDIR, [n], root)) for n in names]
    return ImageSet(
        images=np.concatenate([p[0] for p in parts]), labels=np.concatenate([p[1] for p in parts])
    )
