"""One process per run folder: an exclusive, OS-level lock with the holder's identity.

``FolderLock(folder).acquire()`` takes an exclusive ``flock`` on ``folder/.lock`` (on
Windows, ``msvcrt.locking``) and writes the holder's pid, host, start time and command
into it. The operating system releases the lock when the holder exits, however it exits
(``kill -9`` included), so a lock left by a crashed process is stale by construction and
the next process takes it; the file's old content only serves the message of a refused
acquire. The lock file itself is never deleted (deleting it would let two processes lock
two different files of the same name).

With several processes of one ``torchrun`` group, rank 0 holds the lock for the group.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

LOCK_FILE = ".lock"


class FolderLockedError(OSError):
    """Another live process holds the folder's lock."""


def _try_lock(fd: int) -> bool:
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except (BlockingIOError, PermissionError):
        return False
    return True


def _unlock(fd: int) -> None:
    if sys.platform == "win32":  # pragma: no cover
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        return
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_UN)


class FolderLock:
    """An exclusive lock on ``folder`` for the lifetime of this process's use of it.

    Use as a context manager or with :meth:`acquire` / :meth:`release`. ``what`` names the
    folder in messages (``"run folder"``, ``"checkpoint_dir"``).
    """

    def __init__(self, folder: str | os.PathLike[str], what: str = "folder") -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self.what = what
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def holder(self) -> dict[str, Any]:
        """What the lock file says about its (last) holder; ``{}`` when unreadable."""
        try:
            record = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return record if isinstance(record, dict) else {}

    def acquire(self) -> FolderLock:
        """Take the lock or raise :class:`FolderLockedError` naming the live holder."""
        if self._fd is not None:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(fd):
            os.close(fd)
            who = self.holder()
            since = who.get("started", "?")
            command = f" ({who['command']})" if who.get("command") else ""
            raise FolderLockedError(
                f"{self.what} {self.folder} is in use by process {who.get('pid', '?')} on "
                f"{who.get('host', '?')} since {since}{command}; wait for it to finish or stop it "
                "(a crashed process releases the lock by itself)"
            )
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[:300],
        }
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(record) + "\n").encode())
        self._fd = fd
        return self

    def release(self) -> None:
        """Release the lock (a no-op when not held)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            _unlock(fd)
        finally:
            os.close(fd)

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def __del__(self) -> None:  # a forgotten lock is released with its object
        self.release()
