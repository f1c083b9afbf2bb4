"""What ``make demo`` runs: inclusive-NRF trained on the 32-mode GMM in a few minutes.

It trains one model from ``configs/gmm_inclusive_authors.toml`` (the settings of the
authors' code; see that file), then reports the covered modes and realistic ratio of its
generation (samples of the auxiliary generator) and revision (after L = 10 Langevin
steps) next to the paper's Table I, and writes the run directory with figures like
Fig. 3 (e) generation, (f) revision, (h) the learned potential, and the HTML report.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from nrf import plots
from nrf.data import gmm32
from nrf.metrics import mode_metrics
from nrf.training.config import load_config
from nrf.training.lock import LOCK_FILE, FolderLock
from nrf.training.report import write_report
from nrf.training.run import train
from nrf.training.rundir import RunDir

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "gmm_inclusive_authors.toml"
PAPER = {"generation": (27.46, 0.67), "revision": (30.65, 0.95), "oracle": (30.70, 0.99)}
PAPER_ITERATIONS = 160_000  # Table VI of the paper
DEFAULT_THREADS = 2


def demo_threads(threads: int | None = None) -> int:
    """The CPU threads of the demo: ``threads`` when given, else ``OMP_NUM_THREADS`` when
    it is set to a positive integer, else 2."""
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        return threads
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ValueError(f"OMP_NUM_THREADS must be a positive integer, got {env!r}")
        return int(env)
    return DEFAULT_THREADS


def prepare_folder(out_dir: Path, overwrite: bool) -> None:
    """Check ``out_dir`` before any work: a new or empty folder is used; an earlier run
    there is removed only with ``overwrite``; a folder holding anything a run did not write
    (or a file) is refused, and nothing in it is touched."""
    run = RunDir(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"--out: {out_dir} is a file, not a folder; choose a new or empty folder")
    foreign = run.foreign_entries()
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise FileExistsError(
            f"--out: {out_dir} holds files the demo did not write ({shown}); "
            "choose a new or empty folder (nothing was changed)"
        )
    held = out_dir.is_dir() and any(p.name != LOCK_FILE for p in out_dir.iterdir())
    if not held:
        return
    if not overwrite:
        raise FileExistsError(
            f"--out: {out_dir} holds an earlier run; pass --overwrite to replace it "
            "(make demo OVERWRITE=1), or choose another folder"
        )
    with FolderLock(out_dir, "run folder"):  # not while another process trains there
        run.remove_run()


def run_demo(
    out: str | Path,
    seed: int = 0,
    steps: int = 20_000,
    threads: int | None = None,
    *,
    overwrite: bool = False,
) -> Path:
    """Train, evaluate and plot; returns the run directory.

    ``out`` must be a new or empty folder, or hold an earlier run that ``overwrite``
    allows to replace (see :func:`prepare_folder`). ``threads`` defaults to
    :func:`demo_threads`.
    """
    out_dir = Path(out)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    n_threads = demo_threads(threads)
    overrides = [
        f'run.out_dir="{out_dir.parent}"', f'run.name="{out_dir.name}"', f"run.seed={seed}",
        f"run.threads={n_threads}", f"train.steps={steps}", f"train.eval_every={max(steps // 4, 1)}",
        f"train.checkpoint_every={max(steps // 4, 1)}",
    ]  # fmt: skip
    if not CONFIG.is_file():
        raise FileNotFoundError(f"demo config not found: {CONFIG} (run the demo from a source checkout)")
    cfg = load_config(CONFIG, overrides)
    prepare_folder(out_dir, overwrite)
    print(
        f"training inclusive-NRF on the 32-mode GMM: {steps} iterations, seed {seed}, "
        f"{n_threads} threads ({CONFIG.name})"
    )
    run_dir, final = train(cfg)

    from nrf.training.run import load_run

    objective = load_run(run_dir, "latest")
    data = gmm32(generator=torch.Generator().manual_seed(seed))
    gen = torch.Generator().manual_seed(seed + 1)
    idx = torch.randint(0, data.x.shape[0], (10_000,), generator=gen)
    oracle = mode_metrics(data.x[idx], data.centres, data.std)
    # The run's final evaluation (10,000 samples each), the figures its report shows.
    rows = [
        ("generation", final["generation_covered_modes"], final["generation_realistic_ratio"]),
        ("revision", final["covered_modes"], final["realistic_ratio"]),
        ("oracle", oracle.covered_modes, oracle.realistic_ratio),
    ]
    print(f"\n{'':12} {'covered modes':>14} {'realistic ratio':>16}   paper (Table I)")
    for name, modes, ratio in rows:
        pm, pr = PAPER[name]
        print(f"{name:12} {modes:14.2f} {ratio:16.3f}   {pm:.2f} / {pr:.2f}")
    print(
        f"\nThe paper trains {PAPER_ITERATIONS:,} iterations and reports its best checkpoints; "
        f"this run trained {steps:,} and reports its final model,\nso figures below the paper's "
        "are expected (the same as the report's: the run's final evaluation, 10,000 samples)."
    )

    with torch.no_grad():
        generation = objective.sample_generation(1000, gen)  # type: ignore[operator]
        revision = objective.sample(1000, gen)
    fig, axes = plots.new_figure(3)
    plots.scatter_2d(axes[0, 0], generation, data.centres, "(e) inclusive-NRF generation", lim=6)
    plots.scatter_2d(axes[0, 1], revision, data.centres, "(f) inclusive-NRF revision", lim=6)
    plots.energy_heatmap(axes[0, 2], objective.energy, 6, data.centres, "(h) learned potential u(x) = -E(x)")
    figure = plots.save(fig, RunDir(run_dir).plot("fig3", steps))
    report = write_report(run_dir)
    print(f"\nfigures: {figure}\nreport:  {report}\nrun:     {run_dir}")
    return run_dir
