"""``nrf data list``, ``nrf data download NAME`` and ``nrf data prepare NAME``."""

from __future__ import annotations

import argparse
from typing import Any

from nrf.data import paths
from nrf.data.registry import DATASETS, dataset_status, download

PREPARED = ("mnist-features", "inception")


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

    p_prep = dsub.add_parser(
        "prepare",
        help="build what nrf derives from the data (mnist-features: FID/KID/IS-MNIST's network; "
        "inception: FID's Inception network from a local weight file)",
    )
    p_prep.add_argument("name", metavar="NAME", help=f"what to build: {', '.join(PREPARED)}")
    p_prep.add_argument("--from", dest="source", metavar="FILE",
                        help="inception: a local pt_inception-2015-12-05-6726825d.pth "
                        "(never downloaded)")  # fmt: skip
    p_prep.add_argument("--sha256", help="inception: the full sha256 the file must have (default: the "
                        "digest prefix of the published name)")  # fmt: skip
    p_prep.add_argument("--root", help="where to write (default: $NRF_DATA_DIR, else ~/.cache/nrf)")
    p_prep.add_argument("--force", action="store_true", help="rebuild even if a verified copy exists")
    p_prep.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p_prep.add_argument("--quiet", action="store_true", help="no progress bar")
    p_prep.set_defaults(handler=run_prepare)


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


def run_prepare(args: argparse.Namespace) -> int:
    """Build ``args.name`` (the MNIST feature network, or the Inception weights converted
    from a local file) into the data folder."""
    if args.name not in PREPARED:
        raise ValueError(f"unknown name {args.name!r} to prepare; known: {', '.join(PREPARED)}")
    if args.name == "inception":
        from nrf.metrics.inception import PYTORCH_FID_FILE, convert_inception_weights

        if args.source is None:
            raise ValueError(f"prepare inception needs --from FILE (a local copy of {PYTORCH_FID_FILE})")
        convert_inception_weights(args.source, args.root, sha256=args.sha256, force=args.force)
        return 0
    if args.source is not None or args.sha256 is not None:
        raise ValueError(f"--from and --sha256 are for `prepare inception`, not {args.name!r}")
    import torch

    from nrf.metrics.mnist_features import prepare_feature_network

    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    prepare_feature_network(args.root, force=args.force, progress=not args.quiet)
    return 0
