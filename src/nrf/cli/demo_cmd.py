"""``nrf demo``: the job ``make demo`` runs."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="show the built-in data sets and the paper's networks (untrained)")
    p.add_argument("--out", default="runs/demo", help="folder for the figures (default: runs/demo)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--root", help="data root searched first (then $NRF_DATA_DIR, ~/.cache/nrf)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from nrf.demo import run_demo

    run_demo(args.out, seed=args.seed, root=args.root)
    return 0
