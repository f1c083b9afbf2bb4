"""MNIST in its original IDX format (gzip or raw).

IDX layout: a big-endian header ``0x00 0x00 <type> <ndim>`` (magic 2051 for the image
files, 2049 for the label files), ``ndim`` big-endian uint32 sizes, then the unsigned
bytes. The loader validates the magic number, the sizes, the byte count and, by default,
the md5 of the uncompressed file against the values published with the data set.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nrf._checks import check_choice
from nrf.data._io import read_bytes, verify
from nrf.data.errors import DataFormatError
from nrf.data.paths import find_file

SUBDIR = "mnist"
IMAGE_SIZE = (28, 28)
IMAGE_MAGIC = 2051
LABEL_MAGIC = 2049

#: file stem -> (md5 of the uncompressed file, number of items), as published.
FILES: dict[str, tuple[str, int]] = {
    "train-images-idx3-ubyte": ("6bbc9ace898e44ae57da46a324031adb", 60000),
    "train-labels-idx1-ubyte": ("a25bea736e30d166cdddb491f175f624", 60000),
    "t10k-images-idx3-ubyte": ("2646ac647ad5339dbf082846283269ea", 10000),
    "t10k-labels-idx1-ubyte": ("27ae3e4e09519cfbb04c329615203637", 10000),
}
_PREFIX = {"train": "train", "test": "t10k"}


@dataclass(frozen=True)
class ImageSet:
    """Images ``(n, H, W)`` or ``(n, H, W, C)`` (uint8 unless stated) with integer labels."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def read_idx(path: str | os.PathLike[str], expected_magic: int | None = None) -> np.ndarray:
    """Read one IDX file (gzip or raw) of unsigned bytes into an array.

    Raises :class:`DataFormatError` naming the file for a wrong magic number, a size
    header that does not match the number of bytes, or a corrupt gzip stream.
    """
    p = Path(path)
    data = read_bytes(p)
    return _parse_idx(p, data, expected_magic)


def _parse_idx(path: Path, data: bytes, expected_magic: int | None) -> np.ndarray:
    if len(data) < 4:
        raise DataFormatError(path, f"too short for an IDX header ({len(data)} bytes)")
    (magic,) = struct.unpack(">I", data[:4])
    if expected_magic is not None and magic != expected_magic:
        raise DataFormatError(path, f"wrong IDX magic number: expected {expected_magic}, got {magic}")
    dtype_code, ndim = (magic >> 8) & 0xFF, magic & 0xFF
    if magic >> 16 != 0 or dtype_code != 0x08 or not 1 <= ndim <= 4:
        raise DataFormatError(path, f"not an unsigned-byte IDX file (magic number {magic})")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataFormatError(path, f"truncated IDX header: need {header} bytes, file has {len(data)}")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = math.prod(dims)  # Python ints: four sizes up to 2**32 - 1 do not overflow
    actual = len(data) - header
    if actual != expected:
        raise DataFormatError(
            path, f"IDX sizes {dims} need {expected} data bytes, file has {actual} (truncated or padded)"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def _load(stem: str, root: str | os.PathLike[str] | None, verify_md5: bool) -> tuple[Path, np.ndarray]:
    path = find_file("mnist", SUBDIR, [stem + ".gz", stem], root)
    data = read_bytes(path)
    md5, count = FILES[stem]
    if verify_md5:
        verify(path, data, "md5", md5)
    magic = IMAGE_MAGIC if "images" in stem else LABEL_MAGIC
    arr = _parse_idx(path, data, magic)
    if arr.shape[0] != count and verify_md5:
        raise DataFormatError(path, f"expected {count} items, got {arr.shape[0]}")
    return path, arr


def load_mnist(
    split: str = "train",
    root: str | os.PathLike[str] | None = None,
    *,
    verify_md5: bool = True,
) -> ImageSet:
    """Load the MNIST ``"train"`` (60,000) or ``"test"`` (10,000) split.

    Files are looked up as described in :mod:`nrf.data.paths` under ``mnist/``, gzip
    (``train-images-idx3-ubyte.gz``) or raw (``train-images-idx3-ubyte``).

    Returns an :class:`ImageSet` with ``images`` uint8 ``(n, 28, 28)`` and ``labels``
    uint8 ``(n,)``; images of another size, an empty file, a label count that differs
    from the image count or a label above 9 raise :class:`DataFormatError` naming the file.
    With ``verify_md5`` (default) the uncompressed files must match the published md5
    values; switch it off for modified or subsampled files.
    """
    check_choice("split", split, tuple(_PREFIX))
    prefix = _PREFIX[split]
    img_path, images = _load(f"{prefix}-images-idx3-ubyte", root, verify_md5)
    lab_path, labels = _load(f"{prefix}-labels-idx1-ubyte", root, verify_md5)
    if images.ndim != 3:
        raise DataFormatError(img_path, f"expected 3-D images (n, rows, cols), got shape {images.shape}")
    if images.shape[1:] != IMAGE_SIZE:
        raise DataFormatError(
            img_path, f"MNIST images must be 28 x 28, got {images.shape[1]} x {images.shape[2]}"
        )
    if images.shape[0] == 0:
        raise DataFormatError(img_path, "no images (the IDX file holds 0 items)")
    if labels.ndim != 1:
        raise DataFormatError(lab_path, f"expected 1-D labels, got shape {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise DataFormatError(
            lab_path, f"{labels.shape[0]} labels for {images.shape[0]} images in {img_path.name}"
        )
    if labels.size and int(labels.max()) > 9:
        raise DataFormatError(lab_path, f"labels must be digits 0-9, found {int(labels.max())}")
    return ImageSet(images=images, labels=labels)
