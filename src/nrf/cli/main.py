"""The ``nrf`` command line: each subcommand builds its arguments and calls the library.

Every failure ends as one line on stderr and exit code 1: errors in what the user asked for
(bad configs, missing data, a diverged run) print their message; any other exception prints
its type and first line with a hint to rerun with ``--debug`` (``nrf --debug COMMAND ...`` or
``nrf COMMAND --debug ...``), which lets the exception through with its traceback. An
interrupt (Ctrl-C) exits with code 130. A mistyped command line gets argparse's usage
line and exit code 2. When the reader of the output goes away (``nrf score ... | head``), the
command stops quietly with 141 (128 + SIGPIPE, what a shell reports for a program that
signal stopped).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from nrf import __version__
from nrf.cli import bench_cmd, data_cmd, demo_cmd, rollout_cmd, train_cmd
from nrf.data.errors import DataFormatError, DataNotFoundError
from nrf.training.trainer import TrainingDiverged


class UserError(Exception):
    """An error in what the user asked for; printed as one line, exit code 1."""


# Errors in what the user asked for: their message is the whole story.
EXPECTED = (UserError, DataNotFoundError, DataFormatError, ValueError, OSError, TrainingDiverged)
DEBUG_HELP = "on an error, show the full traceback instead of one line"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nrf",
        description="Neural random fields: train, sample and score energy-based models.",
    )
    parser.add_argument("--version", action="version", version=f"nrf {__version__}")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    bench_cmd.register(sub)
    data_cmd.register(sub)
    demo_cmd.register(sub)
    rollout_cmd.register(sub)
    train_cmd.register(sub)
    for command in _subparsers(sub):
        # SUPPRESS: a subcommand without --debug keeps the value of the global flag
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    return parser


def _subparsers(action: argparse._SubParsersAction[argparse.ArgumentParser]) -> list[argparse.ArgumentParser]:
    """Every parser below ``action``, nested subcommands (``nrf data list``) included."""
    found: list[argparse.ArgumentParser] = []
    for parser in dict.fromkeys(action.choices.values()):
        found.append(parser)
        for nested in parser._actions:
            if isinstance(nested, argparse._SubParsersAction):
                found += _subparsers(nested)
    return found


def _first_line(exc: BaseException) -> str:
    """The first non-empty line of the exception's message ('' when it has none)."""
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), "")


BROKEN_PIPE = 141


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush of a closed pipe does
    not print 'Exception ignored ... BrokenPipeError' on exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (captured in tests)
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nrf`` console script; returns the exit code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "bench":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"nrf {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _quiet_stdout()
        return BROKEN_PIPE
    except EXPECTED as exc:
        if args.debug:
            raise
        first, *rest = str(exc).splitlines() or [type(exc).__name__]
        print(f"nrf {args.command}: error: {first}", file=sys.stderr)
        for line in rest:
            print(f"  {line}", file=sys.stderr)
        return 1
    except Exception as exc:
        if args.debug:
            raise
        message = _first_line(exc)
        what = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
        print(f"nrf {args.command}: error: {what} (run with --debug for the traceback)", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
