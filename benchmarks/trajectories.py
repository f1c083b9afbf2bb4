"""IGEBM's trajectory models: multi-step rollouts of EBMs against feed-forward models on the
bouncing ball (001_… Fig. 8) and a simulated robot arm (002_… Fig. 13).

Data sets (``--datasets``):

* ``ball``: one ball in a box with walls, drag and friction (``nrf.data.bouncing_ball``),
  4,500 training and 500 test trajectories of 500 steps; models: ``ebm-ld`` (Fig. 14c's
  energy, 20 Langevin steps, ``configs/ball_ebm.toml``), ``ebm-mppi`` (the same energy with
  MPPI negatives, ``configs/ball_ebm_mppi.toml``), ``ebm-dsm`` (not a paper method: the
  same energy with SiLU fitted by denoising score matching of the next position, sampled
  by the same Langevin chains, ``configs/ball_ebm_dsm.toml``) and ``feed-forward`` (the
  same layers predicting the next position, ``configs/ball_ff.toml``);
* ``pusher`` / ``pusher-conditional``: gymnasium's MuJoCo Pusher arm under a scripted
  controller with every 4th action random (``nrf.data.robot``; the stand-in for 002_…'s
  policy-driven hand), 2,000 training and 200 test trajectories of 100 steps, without /
  with the actions; models: ``ebm-ld`` (002_…'s 3 x 128 FC energy,
  ``configs/pusher_ebm.toml`` / ``pusher_ebm_conditional.toml``), ``ebm-dsm`` (not a paper
  method: the same energy with SiLU fitted by denoising score matching,
  ``configs/pusher_ebm_dsm*.toml``) and ``fc`` (the spectral-normalized 3 x 128 FC
  predictor, ``configs/pusher_fc*.toml``).

Every model trains for ``--minutes`` of wall time (``train.max_seconds``) with
``--threads`` threads, per seed (``--seeds``), and is scored in its final state on the test
trajectories: the rollout MSE 1..10 steps after the context, from starts every 50 steps
of every test trajectory (Fig. 8), and the Fréchet distance between predicted and true
states at each step of rollouts from each test trajectory's first window (``--fd-steps``
steps; Fig. 13), averaged over the steps. Results are kept in
``OUT/trajectories-progress.jsonl`` (``--resume``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _anomaly import Progress, add_report_argument, open_progress
from _runs import choose, train_config

from nrf.applications.trajectories import score_rollouts
from nrf.bench import BenchResult, markdown_table, mean_sd
from nrf.data.trajectories import load_trajectories

NAME = "trajectories"
DESCRIPTION = "IGEBM Figs. 8 / 13: rollout MSE and Fréchet distance of EBMs (Langevin, MPPI) vs feed-forward"
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
DATASETS = {"ball": "bouncing-ball", "pusher": "pusher", "pusher-conditional": "pusher-conditional"}
METHODS: dict[str, dict[str, str]] = {  # data set -> method -> shipped config
    "ball": {
        "ebm-ld": "ball_ebm",
        "ebm-mppi": "ball_ebm_mppi",
        "ebm-dsm": "ball_ebm_dsm",
        "feed-forward": "ball_ff",
    },
    "pusher": {"ebm-ld": "pusher_ebm", "ebm-dsm": "pusher_ebm_dsm", "fc": "pusher_fc"},
    "pusher-conditional": {
        "ebm-ld": "pusher_ebm_conditional",
        "ebm-dsm": "pusher_ebm_dsm_conditional",
        "fc": "pusher_fc_conditional",
    },
}
PAPER_FD = {  # 002_… section 5.2: average Fréchet distance on its hand data (not ours)
    ("pusher", "ebm-ld"): 5.96, ("pusher", "fc"): 33.28,
    ("pusher-conditional", "ebm-ld"): 8.97, ("pusher-conditional", "fc"): 19.75,
}  # fmt: skip
HORIZON = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--datasets", default="ball,pusher,pusher-conditional",
                        help="comma-separated: ball, pusher, pusher-conditional")  # fmt: skip
    text = "comma-separated (default: all of each set): ebm-ld, ebm-mppi, ebm-dsm, feed-forward, fc"
    parser.add_argument("--methods", default=None, help=text)
    parser.add_argument("--seeds", type=int, default=None, help="seeds per model (default 5, quick 1)")
    parser.add_argument("--minutes", type=float, default=None,
                        help="training wall time per model (default 20, quick 0.5)")  # fmt: skip
    text = "steps of the Fréchet rollouts (default: to the end; ball 100, quick 30)"
    parser.add_argument("--fd-steps", type=int, default=None, help=text)
    parser.add_argument("--resume", action="store_true", help="continue from OUT/trajectories-progress.jsonl")
    add_report_argument(parser)


def _sizes(dataset: str, quick: bool) -> dict[str, int] | None:
    """Training / test trajectories of the quick run (None: the data set's own)."""
    if not quick:
        return None
    return (
        {"train": 100, "test": 40, "steps": 80}
        if dataset == "ball"
        else {"train": 60, "test": 30, "steps": 40}
    )


def run(args: argparse.Namespace) -> BenchResult:
    datasets = choose(args.datasets, list(DATASETS), "--datasets")
    seeds = args.seeds or (1 if args.quick else 5)
    minutes = args.minutes or (0.5 if args.quick else 20.0)
    if seeds < 1 or minutes <= 0:
        raise ValueError(f"--seeds must be >= 1 and --minutes > 0, got {seeds} and {minutes}")
    config = {"seed": args.seed, "quick": args.quick, "minutes": minutes, "threads": args.threads}
    progress = open_progress(Path(args.out) / "trajectories-progress.jsonl", args, config)
    plan = []
    for dataset in datasets:
        known = list(METHODS[dataset])
        methods = known if args.methods is None else [m for m in choose(args.methods, _all(), "--methods")
                                                      if m in known]  # fmt: skip
        plan += [(dataset, m) for m in methods]
    for dataset in datasets:
        if args.report:
            break
        sizes = _sizes(dataset, args.quick)
        data_cache: dict[int, Any] = {}
        for method in [m for d, m in plan if d == dataset]:
            for s in range(seeds):
                seed = args.seed + s
                key = list(DATASETS).index(dataset) * 1000 + seed  # runs with other --seed merge
                settings = {"config": METHODS[dataset][method], "sizes": sizes}
                if progress.has(f"{dataset}/{method}", key, settings):
                    continue
                if seed not in data_cache:  # the seed's test set: the runs train on their own stream
                    data_cache[seed] = load_trajectories(
                        DATASETS[dataset], n_train=1, n_test=None if sizes is None else sizes["test"],
                        steps=None if sizes is None else sizes["steps"], seed=seed,
                    )  # fmt: skip
                record = _fit_and_score(args, dataset, method, seed, minutes, sizes, data_cache[seed])
                progress.add({"method": f"{dataset}/{method}", "split": key, "dataset": dataset,
                              "model": method, "seed": seed, "settings": settings, **record})  # fmt: skip
                mse10, fd = (float("inf") if v is None else v
                             for v in (record["mse"][-1], record["frechet_mean"]))  # fmt: skip
                print(f"{dataset} {method:<12} seed {seed}  MSE@10 {mse10:.3g}  FD {fd:.4g}  "
                      f"diverged {record['diverged']:.1%}  updates {record['updates']}  "
                      f"{record['train_s']:.0f} s", flush=True)  # fmt: skip
    return _table(progress, plan, Path(args.out))


def _all() -> list[str]:
    return sorted({m for methods in METHODS.values() for m in methods})


def _fit_and_score(
    args: argparse.Namespace, dataset: str, method: str, seed: int, minutes: float,
    sizes: dict[str, int] | None, data: Any,
) -> dict[str, Any]:  # fmt: skip
    base = CONFIGS / f"{METHODS[dataset][method]}.toml"
    overrides = [f"train.max_seconds={60.0 * minutes}"]
    if sizes is not None:
        overrides += [f"data.trajectories={sizes['train']}", f"data.trajectory_steps={sizes['steps']}"]
    cfg = {"run": {"seed": seed}, "train": {"steps": 1_000_000}}
    name = f"{dataset}-{method}-s{seed}"
    trainer, seconds = train_config(cfg, Path(args.out) / "trajectory-runs", name, args.threads, overrides,
                                    base=base, checkpoint_every=1_000_000, log_every=100)  # fmt: skip
    objective = trainer.objective
    updates = int(trainer.loop.step)
    gen = torch.Generator().manual_seed(seed + 991)
    fd_steps = args.fd_steps or (30 if args.quick else (100 if dataset == "ball" else None))
    start = time.perf_counter()
    scores = score_rollouts(
        objective, data, horizon=HORIZON, start_every=50, frechet_steps=fd_steps, generator=gen
    )
    return {
        "train_s": seconds,
        "updates": updates,
        "score_s": time.perf_counter() - start,
        **scores.to_json(),
    }


def _table(progress: Progress, plan: list[tuple[str, str]], out: Path) -> BenchResult:
    rows, results = [], {}
    curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for dataset, method in plan:
        recs = [r for r in progress.done.values() if r["method"] == f"{dataset}/{method}"]
        if not recs:
            continue
        mse = np.array([r["mse"] for r in recs], dtype=float)  # null (a diverged rollout): NaN
        fd = np.array([r["frechet_mean"] for r in recs], dtype=float)
        cells = [_cell(mse[:, h], ".3g") for h in (0, 4, HORIZON - 1)]
        diverged = np.mean([r.get("diverged", 0.0) for r in recs])
        paper = PAPER_FD.get((dataset, method))
        rows.append([dataset, method, str(len(recs)), *cells, _cell(fd, ".4g"), f"{100 * diverged:.1f} %",
                     f"{paper:.2f}" if paper else "-", f"{np.mean([r['updates'] for r in recs]):.0f}",
                     f"{np.mean([r['train_s'] for r in recs]):.0f}"])  # fmt: skip
        results[f"{dataset}/{method}"] = {"records": recs}
        mean_fd = np.mean(np.array([r["frechet"] for r in recs], dtype=float), axis=0)
        curves.setdefault(dataset, {})[method] = (mse.mean(0), mean_fd)
    headers = ["data", "model", "seeds", "MSE 1 step", "MSE 5 steps", "MSE 10 steps",
               "Fréchet (mean over steps)", "diverged rollouts", "paper Fréchet (hand data)", "updates",
               "train s"]  # fmt: skip
    figures = [_plot(curves, out)] if curves else []
    notes = [
        "final models; MSE: per state dimension, from starts every 50 steps of every test trajectory",
        "Fréchet: Gaussian Fréchet distance between predicted and true states per step, from each test "
        "trajectory's first window; the paper's figures are on its own (hand) data and not comparable",
        "diverged rollouts: the share of those rollouts that left the finite numbers; a seed with one "
        "scores inf there and its mean is left out of the cell (counted as 'k inf')",
    ]
    return BenchResult(markdown_table(headers, rows), {"methods": results, "date": time.strftime("%Y-%m-%d")},
                       figures, notes)  # fmt: skip


def _cell(values: np.ndarray, fmt: str) -> str:
    """Mean ± sd over the seeds with a finite figure, and how many had none."""
    finite = values[np.isfinite(values)]
    m, sd = mean_sd(list(finite)) if finite.size else (0.0, 0.0)
    text = f"{format(m, fmt)} ± {sd:.2g}" if finite.size else "-"
    return text + (f" ({values.size - finite.size} inf)" if finite.size < values.size else "")


def _plot(curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(curves), figsize=(4.5 * len(curves), 6.5), squeeze=False)
    for j, (dataset, methods) in enumerate(curves.items()):
        for method, (mse, fd) in methods.items():
            axes[0, j].plot(np.arange(1, len(mse) + 1), mse, marker="o", label=method)
            axes[1, j].plot(np.arange(1, len(fd) + 1), fd, label=method)
        axes[0, j].set(yscale="log", xlabel="prediction steps", ylabel="MSE", title=f"{dataset}: rollout MSE")
        axes[1, j].set(yscale="log", xlabel="step", ylabel="Fréchet distance", title=f"{dataset}: Fréchet")
        axes[0, j].legend(fontsize=8)
    fig.tight_layout()
    path = out / "trajectories.png"
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
