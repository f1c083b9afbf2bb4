"""What ``make demo`` runs: inclusive-NRF trained on the 32-mode GMM in a few minutes.

It trains one model from ``configs/gmm_inclusive_authors.toml`` (the settings of the
authors' code; see that file), then reports the covered modes and realistic ratio of its
generation (samples of the auxiliary generator) and revision (after L = 10 Langevin
steps) next to the paper's Table I, and writes the run directory with figures like
Fig. 3 (e) generation, (f) revision, (h) the learned potential, and the HTML report.
"""

from __future__ import annotations

from pathlib import Path

import torch

from nrf import plots
from nrf.data import gmm32
from nrf.metrics import mode_metrics
from nrf.training.config import load_config
from nrf.training.report import write_report
from nrf.training.run import train
from nrf.training.rundir import RunDir

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "gmm_inclusive_authors.toml"
PAPER = {"generation": (27.46, 0.67), "revision": (30.65, 0.95), "oracle": (30.70, 0.99)}


def run_demo(out: str | Path, seed: int = 0, steps: int = 20_000, threads: int = 2) -> Path:
    """Train, evaluate and plot; returns the run directory."""
    out_dir = Path(out)
    overrides = [
        f'run.out_dir="{out_dir.parent}"', f'run.name="{out_dir.name}"', f"run.seed={seed}",
        f"run.threads={threads}", f"train.steps={steps}", f"train.eval_every={max(steps // 4, 1)}",
        f"train.checkpoint_every={max(steps // 4, 1)}",
    ]  # fmt: skip
    if not CONFIG.is_file():
        raise FileNotFoundError(f"demo config not found: {CONFIG} (run the demo from a source checkout)")
    cfg = load_config(CONFIG, overrides)
    if RunDir(out_dir).checkpoints.exists():
        import shutil

        shutil.rmtree(out_dir)  # the demo's own folder: a fresh run each time
    print(f"training inclusive-NRF on the 32-mode GMM: {steps} iterations, seed {seed} ({CONFIG.name})")
    run_dir, _ = train(cfg)

    from nrf.training.run import load_run

    objective = load_run(run_dir, "latest")
    data = gmm32(generator=torch.Generator().manual_seed(seed))
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        generation = objective.sample_generation(10_000, gen)  # type: ignore[operator]
        revision = objective.sample(10_000, gen)
    idx = torch.randint(0, data.x.shape[0], (10_000,), generator=gen)
    rows = [
        ("generation", mode_metrics(generation, data.centres, data.std)),
        ("revision", mode_metrics(revision, data.centres, data.std)),
        ("oracle", mode_metrics(data.x[idx], data.centres, data.std)),
    ]
    print(f"\n{'':12} {'covered modes':>14} {'realistic ratio':>16}   paper (Table I, best checkpoints)")
    for name, m in rows:
        pm, pr = PAPER[name]
        print(f"{name:12} {m.covered_modes:14.2f} {m.realistic_ratio:16.3f}   {pm:.2f} / {pr:.2f}")

    fig, axes = plots.new_figure(3)
    plots.scatter_2d(axes[0, 0], generation[:1000], data.centres, "(e) inclusive-NRF generation", lim=6)
    plots.scatter_2d(axes[0, 1], revision[:1000], data.centres, "(f) inclusive-NRF revision", lim=6)
    plots.energy_heatmap(axes[0, 2], objective.energy, 6, data.centres, "(h) learned potential u(x) = -E(x)")
    figure = plots.save(fig, RunDir(run_dir).plot("fig3", steps))
    report = write_report(run_dir)
    print(f"\nfigures: {figure}\nreport:  {report}\nrun:     {run_dir}")
    return run_dir
