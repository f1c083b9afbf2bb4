"""Make this process kill itself (SIGKILL) at the ``k``-th call of a file-system primitive
of checkpoint writing: :func:`arm` (used in forked children by ``test_faults.py``), or
``python fault_driver.py POINT K nrf-args...`` to run an ``nrf`` command that way.

``POINT`` is ``replace`` (before a rename), ``fsync`` (before a flush to disk),
``save_file`` (after the tensor file is written, before its state.json) or ``none``.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any


def arm(point: str, k: int) -> None:
    import safetensors.torch

    from nrf.training import checkpoint

    calls = {"n": 0}

    def kill_on_kth() -> None:
        calls["n"] += 1
        if calls["n"] == k:
            os.kill(os.getpid(), signal.SIGKILL)

    if point == "replace":
        original = os.replace

        def replace(*args: Any, **kwargs: Any) -> None:
            kill_on_kth()
            original(*args, **kwargs)

        os.replace = replace  # type: ignore[assignment]
    elif point == "fsync":
        original_fsync = os.fsync

        def fsync(fd: int) -> None:
            kill_on_kth()
            original_fsync(fd)

        os.fsync = fsync  # type: ignore[assignment]
    elif point == "save_file":
        original_save = safetensors.torch.save_file

        def save_file(*args: Any, **kwargs: Any) -> None:
            original_save(*args, **kwargs)
            kill_on_kth()

        checkpoint.save_file = save_file  # type: ignore[assignment]
    elif point != "none":
        raise SystemExit(f"unknown fault point {point!r}")


if __name__ == "__main__":
    arm(sys.argv[1], int(sys.argv[2]))
    from nrf.cli.main import main

    sys.exit(main(sys.argv[3:]))
