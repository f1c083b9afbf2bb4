"""Errors raised by the data layer; each names the file (and the row) at fault."""

from __future__ import annotations

from pathlib import Path


class DataNotFoundError(FileNotFoundError):
    """A data file was not found in any of the places nrf looks.

    The message lists every path tried and how to get the file.
    """

    def __init__(self, dataset: str, filename: str, tried: list[Path], hint: str) -> None:
        places = "\n".join(f"  - {p}" for p in tried) or "  (no data directory configured)"
        super().__init__(f"{dataset}: file {filename!r} not found. Looked in:\n{places}\n{hint}")
        self.dataset = dataset
        self.missing_name = filename  # not .filename: FileNotFoundError would print it instead
        self.tried = tried

    def __str__(self) -> str:
        return str(self.args[0])


class DataFormatError(ValueError):
    """A data file exists but its content is not what its format requires."""

    def __init__(self, path: Path | str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.source = str(path)


class ChecksumError(DataFormatError):
    """A file's checksum differs from the published value."""

    def __init__(self, path: Path | str, algorithm: str, expected: str, actual: str) -> None:
        super().__init__(path, f"{algorithm} checksum mismatch: expected {expected}, got {actual}")
        self.expected = expected
        self.actual = actual
