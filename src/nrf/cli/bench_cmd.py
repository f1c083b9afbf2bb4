"""``nrf bench NAME``: run a benchmark from ``benchmarks/``, print its table, write JSON.

Benchmarks come from ``$NRF_BENCH_DIR`` and the source checkout's ``benchmarks/`` (never
the working directory; see :func:`nrf.bench.benchmark_dirs`); ``nrf bench list`` reads
their descriptions without running them."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "bench",
        help="run a benchmark (nrf bench list shows them)",
        description=(
            "Run a benchmark from benchmarks/ (of the source checkout, or of $NRF_BENCH_DIR): "
            "prints a table and writes OUT/NAME.json."
        ),
        add_help=False,  # ``nrf bench NAME --help`` also lists NAME's own options
    )
    p.add_argument("-h", "--help", action="store_true", help="show this help (with NAME, its options too)")
    p.add_argument("name", nargs="?", help="benchmark name, or 'list'")
    p.add_argument("--quick", action="store_true", help="a short version (fewer seeds / steps)")
    p.add_argument(
        "--out", default="bench-results", help="folder for JSON and figures (default: bench-results)"
    )
    p.add_argument("--seed", type=int, default=0, help="base random seed (default: 0)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"], help="device (default: cpu)")
    p.set_defaults(handler=run, bench_parser=p)


def _print_help(args: argparse.Namespace) -> int:
    """The common options, then (with a benchmark name) the benchmark's own."""
    from nrf import bench

    print(args.bench_parser.format_help())
    if args.name not in (None, "list"):
        module = bench.load(args.name)
        own = argparse.ArgumentParser(
            prog=f"nrf bench {args.name}", description=getattr(module, "DESCRIPTION", None), add_help=False
        )
        if hasattr(module, "add_arguments"):
            module.add_arguments(own)
        print(own.format_help())
    return 0


def run(args: argparse.Namespace) -> int:
    import torch

    from nrf import bench

    if args.help:
        return _print_help(args)
    if args.name is None:
        raise ValueError("nrf bench needs a benchmark NAME ('nrf bench list' shows them)")
    if args.name == "list":
        found = bench.discover()
        if not found:
            print(f"no benchmarks found (set ${bench.ENV_VAR} to a folder of benchmark files)")
        for name, path in found.items():
            print(f"{name:<16} {bench.describe(path)}  ({path})")
        return 0
    module = bench.load(args.name)
    if hasattr(module, "add_arguments"):
        parser = argparse.ArgumentParser(prog=f"nrf bench {args.name}")
        module.add_arguments(parser)
        extra, unknown = parser.parse_known_args(args.extra)
        if unknown:
            raise ValueError(f"unknown options for {args.name}: {' '.join(unknown)}")
        for key, value in vars(extra).items():
            setattr(args, key, value)
    elif args.extra:
        raise ValueError(f"unknown options for {args.name}: {' '.join(args.extra)}")
    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available")
    args.out = Path(args.out)
    start = time.perf_counter()
    result = module.run(args)
    elapsed = time.perf_counter() - start
    print(result.table)
    for note in result.notes:
        print(f"note: {note}")
    path = bench.write_json(args.out / f"{args.name}.json", args.name, result, sys.argv[2:], elapsed)
    print(f"results: {path}")
    for fig in result.figures:
        print(f"figure:  {fig}")
    print(f"wall time: {elapsed:.1f} s")
    return 0
