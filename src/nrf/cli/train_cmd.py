"""``nrf train``, ``nrf resume``, ``nrf sample``, ``nrf score`` and ``nrf report``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from nrf._files import write_atomic


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], help="override run.device")
    p.add_argument("--seed", type=int, help="override run.seed")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "train", help="train a model from a TOML config", description="Train from a TOML config."
    )
    p.add_argument("config", help="TOML file (see configs/)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set optim.energy.lr=1e-4 (repeatable)")  # fmt: skip
    p.add_argument("--unset", action="append", default=[], metavar="KEY",
                   help="drop a config value (its default applies): --unset optim.energy.betas")  # fmt: skip
    _common(p)
    p.set_defaults(handler=run_train)

    p = sub.add_parser("resume", help="continue a run from its newest valid checkpoint")
    p.add_argument("run_dir", help="the run directory (runs/NAME)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.steps=5000")  # fmt: skip
    p.add_argument("--unset", action="append", default=[], metavar="KEY",
                   help="drop a config value (its default applies): --unset optim.energy.betas")  # fmt: skip
    _common(p)
    p.set_defaults(handler=run_resume)

    p = sub.add_parser("sample", help="draw samples from a trained run into a .npy file")
    p.add_argument("run_dir")
    p.add_argument("-n", type=int, default=100, help="number of samples (default 100)")
    p.add_argument("--out", required=True, help="output .npy file (refused if it exists, unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--checkpoint", choices=["best", "latest"], default="best")
    p.add_argument("--model", type=int, help="which model, for runs that trained several together")
    p.add_argument("--steps", type=int, help="MCMC-trained models: sampler steps (default: the training's K)")
    p.add_argument("--init", choices=["buffer", "chains", "noise"],
                   help="MCMC-trained models: start from the replay buffer, the persistent chains or "
                        "uniform noise (default: the first the run has)")  # fmt: skip
    _common(p)
    p.set_defaults(handler=run_sample)

    p = sub.add_parser("score", help="energies of the rows of a .npy or .csv file (higher = more anomalous)")
    p.add_argument("run_dir")
    p.add_argument(
        "--input",
        required=True,
        help=".npy array of shape (n, features...) of integers or floats, or .csv rows of numbers "
        "(a first line of names is a header); image runs take (n, C, H, W), (n, H, W) or flat rows",
    )
    p.add_argument(
        "--pixels",
        choices=["auto", "raw", "scaled"],
        default="auto",
        help="image runs: rows are raw pixels (0-255; 0-16 for digits) to scale by the run's "
        "data.scale, or already scaled; auto: raw when the values are integers above 1 "
        "(default: auto; the choice is printed on stderr)",
    )
    p.add_argument(
        "--threshold", type=float, help="also give labels: 1 (anomalous) where the energy is above this value"
    )
    p.add_argument(
        "--contamination",
        type=float,
        help="also give labels, the threshold being the (1 - c) quantile of the energies of "
        "the run's own training rows",
    )
    p.add_argument(
        "--out", help="write the energies (and labels) to this .npy or .csv file (default: print them)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--checkpoint", choices=["best", "latest"], default="best")
    p.add_argument("--model", type=int, help="which model, for runs that trained several together")
    _common(p)
    p.set_defaults(handler=run_score)

    p = sub.add_parser("report", help="write RUN_DIR/report.html (self-contained)")
    p.add_argument("run_dir")
    p.add_argument("--out", help="output file (default RUN_DIR/report.html)")
    p.set_defaults(handler=run_report)


def _overrides(args: argparse.Namespace) -> list[str]:
    # --unset first: `--unset optim.energy --set optim.energy.name=rmsprop` replaces a table
    extra = [f"{key}=~" for key in getattr(args, "unset", []) or []]
    extra += list(getattr(args, "set", []) or [])
    if args.device is not None:
        extra.append(f'run.device="{args.device}"')
    if args.seed is not None:
        extra.append(f"run.seed={args.seed}")
    return extra


def run_train(args: argparse.Namespace) -> int:
    from nrf.training.config import load_config
    from nrf.training.run import train

    cfg = load_config(args.config, _overrides(args))
    run_dir, final = train(cfg)
    print(f"run: {run_dir}")
    for k, v in final.items():
        print(f"  {k} = {v:.4g}")
    return 0


def run_resume(args: argparse.Namespace) -> int:
    import json

    from nrf.training.run import resume
    from nrf.training.rundir import RunDir

    summary = RunDir.of(args.run_dir).summary

    def progress() -> tuple[object, object]:
        try:
            record = json.loads(summary.read_text())
        except (OSError, ValueError):
            return None, None
        return record.get("status"), record.get("step")

    status, step = progress()
    final = resume(args.run_dir, _overrides(args))
    if status == "completed" and progress() == (status, step):
        print(f"run: {args.run_dir} was already complete at step {step}; nothing was trained "
              "(--set train.steps=N with a larger N trains further)")  # fmt: skip
    else:
        print(f"run: {args.run_dir} (completed)")
    for k, v in final.items():
        print(f"  {k} = {v:.4g}")
    return 0


def _output(path: str, overwrite: bool, suffixes: tuple[str, ...]) -> Path:
    """``--out`` checked before any work: its suffix, and an existing file only with ``--overwrite``."""
    out = Path(path)
    if out.suffix not in suffixes:
        raise ValueError(f"--out must end in {' or '.join(suffixes)}, got {out.name}")
    if out.is_dir():
        raise ValueError(f"--out: {out} is a folder")
    if out.exists() and not overwrite:
        raise FileExistsError(f"--out: {out} exists; pass --overwrite to replace it")
    return out


def _seeded_generator(args: argparse.Namespace, device: str) -> Any:
    import torch

    gen = torch.Generator(device=device)
    return gen.manual_seed(args.seed if args.seed is not None else 0)


def run_sample(args: argparse.Namespace) -> int:
    import torch

    from nrf.training.ensemble import member_samples
    from nrf.training.run import load_run

    if args.n < 1:
        raise ValueError(f"-n must be >= 1, got {args.n}")
    out = _output(args.out, args.overwrite, (".npy",))
    device = args.device or "cpu"
    objective = load_run(args.run_dir, args.checkpoint, device)
    generator = _seeded_generator(args, device)
    if args.steps is not None or args.init is not None:
        from nrf.objectives import ContrastiveDivergence

        if not isinstance(objective, ContrastiveDivergence):
            raise ValueError(
                f"--steps / --init: the run's objective ({type(objective).__name__}) does not sample by "
                "MCMC from a buffer, chains or noise (cd, igebm, jem and beam runs do)"
            )
        if args.model is not None:
            raise ValueError("--steps / --init cannot be combined with --model")
        with torch.no_grad():
            samples = objective.sample(args.n, generator, steps=args.steps, init=args.init).cpu().numpy()
    else:
        with torch.no_grad():
            samples = member_samples(objective, args.n, args.model, generator).cpu().numpy()
    write_atomic(out, lambda f: np.save(f, samples))
    print(f"{samples.shape[0]} samples of shape {samples.shape[1:]} -> {out}")
    return 0


def _read_rows(path: Path) -> np.ndarray:
    """The rows to score from ``--input`` as float32 ``(n, features...)``.

    A ``.npy`` array must have an integer or float dtype and at least 2 dimensions, rows
    first: a 1-D array of n values is refused rather than guessed to be n rows of one
    feature or one row of n features (save it as ``(n, 1)`` or ``(1, n)``). A ``.csv``
    file gives one row per non-blank line, every line with the same number of numeric
    fields. At least one row, and no NaN or inf. Anything else raises
    ``ValueError("--input: <path>: ...")``.
    """
    from nrf.data.errors import DataFormatError
    from nrf.data.tabular import read_rows

    if not path.is_file():
        raise FileNotFoundError(f"--input: file not found: {path}")
    if path.suffix not in (".npy", ".csv"):
        raise ValueError(f"--input must be a .npy or .csv file, got {path.name}")
    try:
        return read_rows(path, path.suffix[1:], min_ndim=2, finite=True)
    except DataFormatError as exc:
        raise ValueError(f"--input: {exc}") from None


def _model_rows(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``x`` as ``(n, *shape)``: rows of that shape, flat rows, or rows of the shape
    without its leading 1s (``(n, 28, 28)`` for a ``(1, 28, 28)`` model)."""
    numel = int(np.prod(shape))
    squeezed = shape
    while squeezed and squeezed[0] == 1:
        squeezed = squeezed[1:]
    if tuple(x.shape[1:]) in (shape, (numel,), squeezed):
        return x.reshape(x.shape[0], *shape)
    raise ValueError(
        f"--input rows have shape {tuple(x.shape[1:])}, the model expects {shape} "
        f"(or flat rows of {numel} values)"
    )


def _raw_pixels(x: np.ndarray, path: Path, choice: str) -> bool:
    """Whether image rows are raw pixels: ``--pixels raw|scaled``, or for ``auto`` an
    integer ``.npy`` dtype, or (CSV, float arrays) integer values of which some exceed 1."""
    if choice != "auto":
        return choice == "raw"
    if path.suffix == ".npy" and np.load(path, mmap_mode="r").dtype.kind in "iu":
        return True
    return bool(np.all(x == np.round(x)) and x.max() > 1)


def _threshold(args: argparse.Namespace, objective: Any, cfg: Any, device: str) -> float | None:
    """``--threshold``, or the ``--contamination`` quantile of the run's training energies."""
    import torch

    from nrf.training.data import load_training_data
    from nrf.training.ensemble import member_energy

    if args.threshold is not None and args.contamination is not None:
        raise ValueError("--threshold and --contamination: give one of them, not both")
    if args.threshold is not None:
        if not np.isfinite(args.threshold):
            raise ValueError(f"--threshold must be a finite number, got {args.threshold}")
        return float(args.threshold)
    if args.contamination is None:
        return None
    if not 0.0 < args.contamination < 0.5:
        raise ValueError(f"--contamination must be in (0, 0.5), got {args.contamination}")
    train = load_training_data(cfg.data, cfg.run.seed).train
    energies = torch.cat([member_energy(objective, c.to(device), args.model) for c in train.split(4096)])
    return float(np.quantile(energies.cpu().numpy(), 1.0 - args.contamination))


def run_score(args: argparse.Namespace) -> int:
    import sys

    import torch

    from nrf.training.config import load_config
    from nrf.training.data import IMAGE_PEAKS, scale_raw_images
    from nrf.training.ensemble import member_energy
    from nrf.training.run import load_run
    from nrf.training.rundir import RunDir

    out = None if args.out is None else _output(args.out, args.overwrite, (".npy", ".csv"))
    path = Path(args.input)
    x = _read_rows(path)
    device = args.device or "cpu"
    objective = load_run(args.run_dir, args.checkpoint, device)
    cfg = load_config(RunDir.of(args.run_dir).config, run_directory=True)
    shape = tuple(getattr(objective.energy, "event_shape", x.shape[1:]))
    x = _model_rows(x, shape)
    if cfg.data.name in IMAGE_PEAKS:
        if _raw_pixels(x, path, args.pixels):
            peak = IMAGE_PEAKS[cfg.data.name]
            if x.min() < 0 or x.max() > peak:
                raise ValueError(
                    f"--input: raw pixels of {cfg.data.name} lie in [0, {peak:g}], these in "
                    f"[{x.min():g}, {x.max():g}] (pass --pixels scaled for rows in the model's units)"
                )
            seed = args.seed if args.seed is not None else 0
            x = scale_raw_images(cfg.data, x, seed)
            print(
                f"nrf score: raw pixels scaled by the run's data.scale = {cfg.data.scale!r}", file=sys.stderr
            )
        elif args.pixels == "auto":
            print(f"nrf score: rows taken as already scaled (data.scale = {cfg.data.scale!r}); "
                  "pass --pixels raw otherwise", file=sys.stderr)  # fmt: skip
    elif args.pixels != "auto":
        raise ValueError(f"--pixels applies to image runs; this run's data is {cfg.data.name!r}")
    rows = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    energies = (
        torch.cat([member_energy(objective, c.to(device), args.model) for c in rows.split(4096)])
        .cpu()
        .numpy()
    )
    threshold = _threshold(args, objective, cfg, device)
    table = energies[:, None] if threshold is None else np.stack([energies, energies > threshold], 1)
    header = "energy" if threshold is None else "energy,label"
    if threshold is not None:
        print(f"nrf score: threshold {threshold:.6g}, {int(table[:, 1].sum())} of {len(table)} rows above it",
              file=sys.stderr)  # fmt: skip
    if out is None:
        for row in table:
            print(f"{row[0]:.6g}" if threshold is None else f"{row[0]:.6g} {int(row[1])}")
    elif out.suffix == ".npy":
        write_atomic(out, lambda f: np.save(f, table[:, 0] if threshold is None else table))
    else:
        write_atomic(out, lambda f: np.savetxt(f, table, fmt=["%.8g"] + ["%d"] * (table.shape[1] - 1),
                                               delimiter=",", header=header, comments=""))  # fmt: skip
    return 0


def run_report(args: argparse.Namespace) -> int:
    from nrf.training.report import write_report

    path = write_report(args.run_dir, args.out)
    print(f"report: {path}")
    return 0
