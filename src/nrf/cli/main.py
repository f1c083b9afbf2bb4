"""The ``nrf`` command line: each subcommand builds its arguments and calls the library."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from nrf import __version__
from nrf.cli import bench_cmd, data_cmd, demo_cmd, train_cmd
from nrf.data.errors import DataFormatError, DataNotFoundError
from nrf.training.trainer import TrainingDiverged


class UserError(Exception):
    """An error in what the user asked for; printed as one line, exit code 1."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nrf",
        description="Neural random fields: train, sample and score energy-based models.",
    )
    parser.add_argument("--version", action="version", version=f"nrf {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    bench_cmd.register(sub)
    data_cmd.register(sub)
    demo_cmd.register(sub)
    train_cmd.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nrf`` console script; returns the exit code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "bench":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    try:
        code: int = args.handler(args)
    except (UserError, DataNotFoundError, DataFormatError, ValueError, OSError, TrainingDiverged) as exc:
        first, *rest = str(exc).splitlines() or [type(exc).__name__]
        print(f"nrf {args.command}: error: {first}", file=sys.stderr)
        for line in rest:
            print(f"  {line}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"nrf {args.command}: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
