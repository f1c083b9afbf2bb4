"""What nrf draws on the console: progress bars go to a terminal only, so a log redirected
to a file holds the lines a program prints, not every redraw of a bar."""

from __future__ import annotations

import sys


def stderr_is_terminal() -> bool:
    """Whether ``sys.stderr`` (where progress bars draw) is an interactive terminal."""
    isatty = getattr(sys.stderr, "isatty", None)
    try:
        return bool(isatty()) if isatty is not None else False
    except ValueError:  # a closed stream
        return False
