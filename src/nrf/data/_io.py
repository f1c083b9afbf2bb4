"""Byte-level helpers: transparent gzip reading and streaming checksums."""

from __future__ import annotations

import gzip
import hashlib
import zlib
from pathlib import Path

from nrf.data.errors import ChecksumError, DataFormatError

GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


def read_bytes(path: Path) -> bytes:
    """The file's content, decompressed when it is gzip (detected by its magic bytes)."""
    if not is_gzip(path):
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise DataFormatError(path, f"corrupt or truncated gzip file ({exc})") from exc


def digest(data: bytes, algorithm: str) -> str:
    return hashlib.new(algorithm, data).hexdigest()


def file_digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(path: Path, data: bytes, algorithm: str, expected: str) -> None:
    """Raise :class:`ChecksumError` naming ``path`` if ``data`` does not hash to ``expected``."""
    actual = digest(data, algorithm)
    if actual != expected.lower():
        raise ChecksumError(path, algorithm, expected, actual)
