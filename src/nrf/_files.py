"""Writing files the way the user's shell would: atomically, with the user's umask.

Temporary files from :mod:`tempfile` are created private (files 0600, folders 0700) so that
no other user can read them while they are written. Once renamed into place they are the
user's output, so every writer here gives them the mode a plain ``open`` or ``mkdir``
would have: ``0o666 & ~umask`` for files, ``0o777 & ~umask`` for folders (0644 / 0755
under the common umask 022).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def current_umask() -> int:
    """The process's umask, read from ``/proc/self/status`` where it says (no change to
    it, safe with threads), else by setting and restoring it."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a new file gets from ``open``: ``0o666 & ~umask``."""
    return 0o666 & ~current_umask()


def folder_mode() -> int:
    """The mode a new folder gets from ``mkdir``: ``0o777 & ~umask``."""
    return 0o777 & ~current_umask()


def write_atomic(path: Path, write: Callable[[BinaryIO], None]) -> Path:
    """``write`` into a temporary file beside ``path``, flush it to disk, give it the
    umask's mode, then rename it into place; on any error nothing is left behind and an
    earlier ``path`` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def write_text_atomic(path: Path, text: str) -> Path:
    """:func:`write_atomic` of ``text`` in UTF-8."""
    data = text.encode("utf-8")

    def put(f: BinaryIO) -> None:
        f.write(data)

    return write_atomic(path, put)


def temp_folder_beside(final: Path) -> Path:
    """A new temporary folder next to ``final`` (to fill, then rename into place), with
    the umask's folder mode."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    os.chmod(tmp, folder_mode())
    return tmp
