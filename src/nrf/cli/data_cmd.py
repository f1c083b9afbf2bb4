"""``nrf data list`` and ``nrf data download NAME``."""

from __future__ import annotations

import argparse
from typing import Any

from nrf.data import paths
from nrf.data.registry import DATASETS, dataset_status, download


def register(sub: Any) -> None:
    p = sub.add_parser("data", help="list and download the real data sets")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    p_list = dsub.add_parser("list", help="show which data sets are found and where")
    p_list.add_argument("--root", help="data root searched first (then $NRF_DATA_DIR, ~/.cache/nrf)")
    p_list.set_defaults(handler=run_list)

    p_dl = dsub.add_parser("download", help="fetch a data set, verify its checksum, write it atomically")
    p_dl.add_argument("name", metavar="NAME", help=f"data set to fetch: {', '.join(sorted(DATASETS))}")
    p_dl.add_argument("--root", help="where to write (default: $NRF_DATA_DIR, else ~/.cache/nrf)")
    p_dl.add_argument("--mirror", help="base URL that replaces the canonical one (file names kept)")
    p_dl.add_argument("--force", action="store_true", help="download even if a verified copy exists")
    p_dl.add_argument("--quiet", action="store_true", help="no progress bar")
    p_dl.set_defaults(handler=run_download)


def run_list(args: argparse.Namespace) -> int:
    roots = paths.data_roots(args.root)
    print("search order: " + ", ".join(str(r) for r in roots))
    for name in DATASETS:
        status = dataset_status(name, args.root)
        mark = "found" if status.complete else ("partial" if status.found else "missing")
        print(f"\n{name:<9} {mark:<8} {status.description}")
        for fname, path in status.found.items():
            print(f"    ok       {fname:<28} {path}")
        for fname in status.missing:
            print(f"    missing  {fname:<28} (nrf data download {name})")
    return 0


def run_download(args: argparse.Namespace) -> int:
    """Download data set ``args.name``; an unknown name is a ``ValueError`` (exit code 1)."""
    if args.name not in DATASETS:
        raise ValueError(f"unknown data set {args.name!r}; known: {', '.join(sorted(DATASETS))}")
    folder = download(args.name, args.root, mirror=args.mirror, force=args.force, progress=not args.quiet)
    print(f"{args.name}: verified files in {folder}")
    return 0
