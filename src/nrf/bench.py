"""Benchmark plumbing shared by the scripts in ``benchmarks/`` (run with ``nrf bench NAME``).

A benchmark is a module ``benchmarks/<name with _>.py`` that defines

* ``NAME`` (``"sampler-kl"``) and ``DESCRIPTION``, as plain string literals (``nrf bench
  list`` reads them from the file without running it);
* ``add_arguments(parser)`` (optional) for its own options;
* ``run(args) -> BenchResult``; ``args`` always has ``quick``, ``out``, ``seed`` and
  ``threads``.

Benchmarks are looked for in two places only (see :func:`benchmark_dirs`): the folder named
by ``$NRF_BENCH_DIR`` (an explicit choice: its files are imported and run) and the
``benchmarks/`` folder of the source checkout nrf is imported from. The current working
directory is never searched: a file that happens to lie in ``./benchmarks`` is not run.

The command prints the result's table, writes ``<out>/<name>.json`` (results plus the
machine, versions and command line) and any figures the benchmark saves into ``out``.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

import nrf
from nrf._files import write_text_atomic

ENV_VAR = "NRF_BENCH_DIR"


@dataclass
class BenchResult:
    """What a benchmark returns: a printable markdown table and JSON-able results."""

    table: str
    results: dict[str, Any]
    figures: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def checkout_benchmarks() -> Path | None:
    """The ``benchmarks/`` folder of the source checkout nrf is imported from (``src/nrf``
    inside a folder with ``pyproject.toml``), or None for an installed package."""
    package = Path(nrf.__file__).resolve().parent
    root = package.parents[1]
    if package.parent.name != "src" or not (root / "pyproject.toml").is_file():
        return None
    folder = root / "benchmarks"
    return folder if folder.is_dir() else None


def benchmark_dirs() -> list[Path]:
    """Where benchmarks are looked for: ``$NRF_BENCH_DIR`` (when set), then the source
    checkout's ``benchmarks/``; never the working directory."""
    dirs: list[Path] = []
    env = os.environ.get(ENV_VAR)
    if env:
        folder = Path(env).expanduser()
        if not folder.is_dir():
            raise ValueError(f"${ENV_VAR}: expected a folder of benchmark files, got {env!r} (not a folder)")
        dirs.append(folder)
    checkout = checkout_benchmarks()
    if checkout is not None and all(checkout.resolve() != d.resolve() for d in dirs):
        dirs.append(checkout)
    return dirs


def discover() -> dict[str, Path]:
    """Benchmark name (the file name with ``-`` for ``_``) -> file, for every ``*.py`` of
    :func:`benchmark_dirs` not starting with ``_`` (the first folder wins a name)."""
    found: dict[str, Path] = {}
    for folder in benchmark_dirs():
        for path in sorted(folder.glob("*.py")):
            if path.name.startswith("_"):
                continue
            name = path.stem.replace("_", "-")
            found.setdefault(name, path)
    return found


def describe(path: Path) -> str:
    """The ``DESCRIPTION`` string of a benchmark file, read without running it ('' when the
    file assigns it no string literal or does not parse)."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError, OSError):
        return ""
    for node in tree.body:
        target: ast.expr
        value: ast.expr | None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign):
            target, value = node.target, node.value
        else:
            continue
        named = isinstance(target, ast.Name) and target.id == "DESCRIPTION"
        if named and isinstance(value, ast.Constant) and isinstance(value.value, str):
            return value.value
    return ""


def find(name: str) -> Path:
    """The file of the benchmark called ``name``; a clear error lists the known ones."""
    known = discover()
    if name not in known:
        where = ", ".join(str(d) for d in benchmark_dirs()) or f"no benchmarks/ folder found; set ${ENV_VAR}"
        raise ValueError(f"unknown benchmark {name!r}; known: {sorted(known) or 'none'} (looked in {where})")
    return known[name]


def load(name: str) -> ModuleType:
    """Import (run) the benchmark called ``name``; a clear error lists the known ones."""
    path = find(name)
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))  # benchmarks may import their sibling helpers
    spec = importlib.util.spec_from_file_location(f"nrf_benchmarks.{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"cannot import benchmark file {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "run"):
        raise ValueError(f"benchmark file {path} defines no run(args)")
    return module


def machine_info() -> dict[str, Any]:
    """The facts a reader needs to compare timings."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "nrf": nrf.__version__,
    }


def write_json(path: Path, name: str, result: BenchResult, argv: Sequence[str], elapsed: float) -> Path:
    """Write the results with their context, atomically."""
    payload = {
        "benchmark": name,
        "command": "nrf bench " + " ".join(argv),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "wall_seconds": round(elapsed, 2),
        "machine": machine_info(),
        "notes": result.notes,
        "results": result.results,
        "figures": [str(f) for f in result.figures],
    }
    return write_text_atomic(path, json.dumps(payload, indent=2, default=_jsonable) + "\n")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table (numbers are expected to be pre-formatted strings)."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells]
    return "\n".join([line, sep, *body])


_STARTED = time.perf_counter()


def progress(message: str) -> None:
    """One line on stderr while a benchmark runs (``[bench 12.3 s] message``), so a long
    run shows where it is; the table and JSON come at the end."""
    print(f"[bench {time.perf_counter() - _STARTED:7.1f} s] {message}", file=sys.stderr, flush=True)


def median_time(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, sd
