"""``nrf demo``: the job ``make demo`` runs."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="train inclusive-NRF on the 32-mode GMM and report it (a few minutes)")
    p.add_argument("--out", default="runs/demo", help="run directory (default: runs/demo)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--steps", type=int, default=20_000, help="training iterations (default: 20000)")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: OMP_NUM_THREADS when set, else 2)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier run in --out (a folder holding other files is always refused)",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from nrf.demo import run_demo

    if args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    run_demo(args.out, seed=args.seed, steps=args.steps, threads=args.threads, overwrite=args.overwrite)
    return 0
