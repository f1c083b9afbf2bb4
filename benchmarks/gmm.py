"""Inclusive-NRF Table I on the 32-mode GMM: covered modes and realistic ratio of every method.

Each method trains ``--seeds`` independent models *together* (batched networks: one model
per seed, own initialization, own data order, own sampling noise; see
``nrf.nn.batched``) from its shipped config in ``configs/``, for ``--steps`` iterations,
and is evaluated on the **final** model (no selection over iterations): 100 batches of
100 samples per seed, a mode covered if a sample lies within 3 sigma of it. Rows give the
mean +- sd over seeds, the training iterations per second (of all seeds together), and
the wall time. The oracle row draws the batches from the training data (10 repeats).

Inclusive-NRF is run with the settings of the authors' code (``gmm_inclusive_authors``:
x-only revision, sigma = 0, revision noise 0.01) unless ``--inclusive-config`` says
otherwise; the paper's variant is ``gmm_inclusive``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch

from nrf import plots
from nrf.bench import BenchResult, markdown_table, mean_sd, progress
from nrf.data import gmm32
from nrf.metrics import mode_metrics
from nrf.training.config import load_config
from nrf.training.data import load_training_data
from nrf.training.run import _prepare

NAME = "gmm"
DESCRIPTION = "Inclusive-NRF Table I: covered modes / realistic ratio on the 32-mode GMM, all methods"
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
PAPER = {  # Table I of the paper (best checkpoints chosen by its authors)
    "GAN (log-D trick)": (21.47, 1.44, 0.83, 0.02),
    "WGAN-GP": (22.21, 1.75, 0.48, 0.06),
    "exclusive-NRF": (23.73, 1.13, 0.50, 0.03),
    "inclusive-NRF generation": (27.46, 1.34, 0.67, 0.08),
    "inclusive-NRF revision": (30.65, 0.04, 0.95, 0.01),
    "oracle": (30.70, 0.09, 0.99, 0.00),
}
METHODS = {  # row name: config file
    "GAN (log-D trick)": "gmm_gan",
    "WGAN-GP": "gmm_wgan_gp",
    "exclusive-NRF": "gmm_exclusive",
    "CD-10 (from data)": "gmm_cd",
    "inclusive-NRF": "gmm_inclusive_authors",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=int, default=None, help="seeds per method (default 10, quick 2)")
    parser.add_argument(
        "--steps", type=int, default=None, help="training iterations (default 50000, quick 500)"
    )
    parser.add_argument(
        "--methods", default="all", help="comma-separated subset of: gan,wgan-gp,exclusive,cd,inclusive"
    )
    parser.add_argument(
        "--inclusive-config", default="gmm_inclusive_authors", help="config for the inclusive rows"
    )
    parser.add_argument(
        "--exclusive-config", default="gmm_exclusive", help="config for the exclusive-NRF row"
    )


def _selected(spec: str) -> list[str]:
    keys = {"gan": "GAN (log-D trick)", "wgan-gp": "WGAN-GP", "exclusive": "exclusive-NRF",
            "cd": "CD-10 (from data)", "inclusive": "inclusive-NRF"}  # fmt: skip
    if spec == "all":
        return list(METHODS)
    wanted = [s.strip() for s in spec.split(",")]
    unknown = [w for w in wanted if w not in keys]
    if unknown:
        raise ValueError(f"--methods: unknown {unknown}; choose from {sorted(keys)}")
    return [keys[w] for w in wanted]


def _train(config: str, args: argparse.Namespace, seeds: int, steps: int) -> tuple[Any, float, Path]:
    out = args.out / "gmm-runs"
    overrides = [
        f'run.out_dir="{out}"', f'run.name="{config}-s{args.seed}"', f"run.seed={args.seed}",
        f"run.threads={args.threads}", f"model.n_models={seeds}", f"train.steps={steps}",
        "train.eval_every=0", f"train.checkpoint_every={max(1, steps // 10)}", "train.progress=false",
        f"train.log_every={max(1, steps // 50)}",
    ]  # fmt: skip
    cfg = load_config(CONFIGS / f"{config}.toml", overrides)
    run_dir = out / cfg.run.name
    if run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    trainer = _prepare(cfg, run_dir)
    trainer.evaluators = []  # evaluated below, on the final models
    start = time.perf_counter()
    trainer.fit()
    return trainer.objective, time.perf_counter() - start, run_dir


def _per_seed(
    samples: torch.Tensor, seeds: int, centres: torch.Tensor, std: float
) -> tuple[list[float], list[float]]:
    metrics = [mode_metrics(block, centres, std) for block in samples.chunk(seeds)]
    return [m.covered_modes for m in metrics], [m.realistic_ratio for m in metrics]


def run(args: argparse.Namespace) -> BenchResult:
    seeds = args.seeds or (2 if args.quick else 10)
    steps = args.steps or (500 if args.quick else 50_000)
    data = load_training_data(load_config(CONFIGS / "gmm_cd.toml").data, args.seed)
    truth = gmm32(generator=torch.Generator().manual_seed(args.seed))
    centres, std = truth.centres, truth.std
    rows: list[list[str]] = []
    results: dict[str, Any] = {"seeds": seeds, "steps": steps, "methods": {}}
    panels: list[tuple[str, torch.Tensor]] = []
    gen = torch.Generator().manual_seed(args.seed + 12345)
    for method in _selected(args.methods):
        progress(f"training {method}")
        config = {"inclusive-NRF": args.inclusive_config, "exclusive-NRF": args.exclusive_config}.get(
            method, METHODS[method]
        )
        objective, seconds, run_dir = _train(config, args, seeds, steps)
        objective.eval()
        variants = (
            [("revision", objective.sample), ("generation", objective.sample_generation)]
            if hasattr(objective, "sample_generation")
            else [("", objective.sample)]
        )
        for variant, draw in variants:
            with torch.no_grad():
                samples = draw(seeds * 10_000, gen).detach().cpu()
            covered, realistic = _per_seed(samples, seeds, centres, std)
            name = f"{method} {variant}".strip()
            (cm, cs), (rm, rs) = mean_sd(covered), mean_sd(realistic)
            paper = PAPER.get(name)
            paper_txt = f"{paper[0]:.2f} ± {paper[1]:.2f} / {paper[2]:.2f} ± {paper[3]:.2f}" if paper else "-"
            rows.append([name, f"{cm:.2f} ± {cs:.2f}", f"{rm:.3f} ± {rs:.3f}", paper_txt,
                         f"{steps / seconds:.1f}", f"{seconds:.0f}"])  # fmt: skip
            results["methods"][name] = {"covered_modes": covered, "realistic_ratio": realistic,
                                        "iterations_per_second": steps / seconds, "train_seconds": seconds,
                                        "config": config, "run_dir": str(run_dir)}  # fmt: skip
            panels.append((name, samples[:1000]))
    oracle_c, oracle_r = [], []
    for r in range(10):
        idx = torch.randint(0, data.train.shape[0], (10_000,), generator=torch.Generator().manual_seed(r))
        m = mode_metrics(data.train[idx], centres, std)
        oracle_c.append(m.covered_modes)
        oracle_r.append(m.realistic_ratio)
    (cm, cs), (rm, rs) = mean_sd(oracle_c), mean_sd(oracle_r)
    p = PAPER["oracle"]
    rows.append(["oracle (training data)", f"{cm:.2f} ± {cs:.2f}", f"{rm:.3f} ± {rs:.3f}",
                 f"{p[0]:.2f} ± {p[1]:.2f} / {p[2]:.2f} ± {p[3]:.2f}", "-", "-"])  # fmt: skip
    results["oracle"] = {"covered_modes": oracle_c, "realistic_ratio": oracle_r}
    fig, axes = plots.new_figure(len(panels), size=3.0)
    for ax, (name, pts) in zip(axes[0], panels, strict=True):
        plots.scatter_2d(ax, pts, centres, f"{name} (seed 0)", lim=6)
    figure = plots.save(fig, args.out / "gmm_samples.png")
    headers = ["method", f"covered modes ({seeds} seeds)", "realistic ratio", "paper: modes / ratio",
               "iterations / s (all seeds)", "train s"]  # fmt: skip
    notes = [
        f"{steps} iterations, batch 100, final models, {seeds} seeds trained together (batched networks)",
        "paper figures are the authors' best checkpoints; ours are the final models",
    ]
    return BenchResult(markdown_table(headers, rows), results, [figure], notes)
