"""BEAM Fig. 3 / Table I (004_…): RBMs, temperature-driven sampling and BEAM on three
mixtures of Gaussians, beside nrf's GAN, WGAN-GP and inclusive-NRF on the same data.

Data (drawn once per seed, 10 % held out for the kNN KL):

* ``bimodal``: two 1-D Gaussians at -2 and 2 (sd 0.5), 10,000 points, batch 100;
* ``ring``: eight 2-D Gaussians on a circle of radius 2 (sd 0.02), 10,000 points, batch 100;
* ``grid``: a 5 x 5 grid at {-2..2}^2 (sd 0.05), 100,000 points, batch 1,000.

RBM rows follow the paper's Table I: Gaussian-Bernoulli RBMs with 10 (bimodal, ring) or
20 (grid) hidden units, 100 Gibbs sweeps per update on as many persistent fantasy
particles as the batch has rows, Adam (0.5, 0.9) at lr 0.1 / 0.15 / 0.2 for 10 / 30 / 200
epochs under a power-law decay (``power`` schedule, f(t) = 1 / (1 + 10 t / T): the paper
does not state its decay), weights N(0, 0.2^2). ``rbm`` is PCD with block Gibbs;
``rbm-tds`` the same with temperature-driven sampling (beta sd 0.9, autocorrelation 0.9);
``beam`` adds the adversary (gamma = 0.5, distance-weighted critic, k = 5, on the hidden
activations). The generator-based rows (2-D mixtures only) use the settings of nrf's GMM
Table I configs (``configs/gmm_*.toml``) for the same number of updates.

Every model is evaluated as trained (final model): 5,000 samples (RBMs: 100 sweeps from
the fantasy particles; the others: their own sampler), the kNN estimates of the forward
KL D(data || model) and the reverse KL D(model || data) against the held-out rows (k = 1),
the modes covered per batch of 100 samples and the realistic ratio (within 3 sd of a
mode). Repeated sample rows (a collapsed model) are skipped as their own neighbours in the
kNN estimate (``ties="drop"``). Rows give mean +- sd over seeds. For the first seed the same
KL estimates (1,000 samples) are taken ``--curve-points`` times over each fit (Fig. 4).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _runs import KLCurve, Points, choose, kl_curve_figure, train_config

from nrf import plots
from nrf.bench import BenchResult, markdown_table, mean_sd, progress
from nrf.data import bimodal1d, grid25, ring8
from nrf.data.synthetic import MixtureData
from nrf.metrics import knn_kl_pair, mode_metrics

NAME = "beam-mog"
DESCRIPTION = "BEAM Fig. 3: RBM-PCD, RBM + driven sampler, BEAM and nrf's GANs on three mixtures (KL, modes)"
CONFIGS = Path(__file__).resolve().parents[1] / "configs"

DATASETS: dict[str, dict[str, Any]] = {
    "bimodal": {"make": lambda g: bimodal1d(n=10_000, generator=g), "hidden": 10, "epochs": 10, "lr": 0.1,
                "batch": 100},
    "ring": {"make": lambda g: ring8(per_mode=1250, generator=g), "hidden": 10, "epochs": 30, "lr": 0.15,
             "batch": 100},
    "grid": {"make": lambda g: grid25(per_mode=4000, generator=g), "hidden": 20, "epochs": 200, "lr": 0.2,
             "batch": 1000},
}  # fmt: skip
RBM_METHODS = ("rbm", "rbm-tds", "beam")
GENERATOR_METHODS = {"gan": "gmm_gan", "wgan-gp": "gmm_wgan_gp", "inclusive": "gmm_inclusive_authors"}
LABELS = {
    "rbm": "RBM (PCD, Gibbs)", "rbm-tds": "RBM (PCD, driven sampler)", "beam": "BEAM (driven sampler)",
    "gan": "GAN (log-D trick)", "wgan-gp": "WGAN-GP", "inclusive": "inclusive-NRF revision",
}  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=int, default=None, help="seeds per row (default 3, quick 1)")
    parser.add_argument("--datasets", default="bimodal,ring,grid", help="comma-separated subset")
    parser.add_argument("--methods", default=",".join([*RBM_METHODS, *GENERATOR_METHODS]),
                        help="subset of: rbm, rbm-tds, beam, gan, wgan-gp, inclusive")  # fmt: skip
    parser.add_argument("--curve-points", type=int, default=10,
                        help="kNN KL points over each fit (first seed; 0: none)")  # fmt: skip
    parser.add_argument("--epochs-scale", type=float, default=None,
                        help="multiply every data set's epochs (default 1, quick 0.05)")  # fmt: skip
    parser.add_argument("--weight-std", type=float, default=0.2,
                        help="sd of the RBMs' initial weights (Table I: 0.2)")  # fmt: skip
    parser.add_argument("--centre", action="store_true",
                        help="centred RBMs: offsets follow the data means (not in the paper)")  # fmt: skip


def _rbm_config(
    method: str,
    ds: dict[str, Any],
    d: int,
    steps: int,
    sweeps: int,
    weight_std: float = 0.2,
    centre: bool = False,
) -> dict[str, Any]:
    sampler: dict[str, Any] = {"name": "gibbs", "steps": sweeps}
    if method != "rbm":
        sampler = {"name": "tds", "beta_std": 0.9, "autocorrelation": 0.9, "steps": sweeps}
    objective: dict[str, Any] = {"name": "cd", "args": {"start": "persistent", "n_particles": ds["batch"]}}
    if method == "beam":
        objective = {"name": "beam", "args": {"gamma": 0.5, "critic": "dnn", "critic_k": 5,
                                              "n_particles": ds["batch"]}}  # fmt: skip
    if centre:
        objective["args"]["centre"] = True
    return {
        "model": {"energy": "rbm", "init_batch": 1, "energy_args": {
            "n_visible": d, "n_hidden": ds["hidden"], "visible": "gaussian", "weight_std": weight_std}},
        "objective": objective,
        "sampler": sampler,
        "optim": {"energy": {"name": "adam", "lr": ds["lr"], "betas": [0.5, 0.9]}},
        "train": {"steps": steps, "batch_size": ds["batch"], "lr_schedule": {"name": "power", "scale": 0.1}},
    }  # fmt: skip


def _draw(objective: Any, n: int, generator: torch.Generator) -> torch.Tensor:
    """The model's own samples (RBMs: sweeps from the fantasy particles)."""
    return objective.sample(n, generator)


def _evaluate(objective: Any, mix: MixtureData, held_out: torch.Tensor, n: int, gen: torch.Generator) -> dict:
    objective.eval()
    with torch.no_grad():
        samples = objective.sample(n, gen).detach().float().reshape(n, -1)
    kl = knn_kl_pair(samples, held_out, k=1, ties="drop")  # a collapsed model repeats rows
    modes = mode_metrics(samples, mix.centres.to(samples), float(mix.std))
    return {"samples": samples, "kl_forward": kl.forward, "kl_reverse": kl.reverse,
            "covered_modes": modes.covered_modes, "realistic_ratio": modes.realistic_ratio}  # fmt: skip


def run(args: argparse.Namespace) -> BenchResult:
    seeds = args.seeds or (1 if args.quick else 3)
    scale = args.epochs_scale or (0.05 if args.quick else 1.0)
    sweeps = 10 if args.quick else 100
    datasets = choose(args.datasets, list(DATASETS), "--datasets")
    methods = choose(args.methods, [*RBM_METHODS, *GENERATOR_METHODS], "--methods")
    rows: list[list[str]] = []
    if not args.weight_std > 0:
        raise ValueError(f"--weight-std must be > 0, got {args.weight_std}")
    results: dict[str, Any] = {"seeds": seeds, "epochs_scale": scale, "sweeps": sweeps,
                               "weight_std": args.weight_std, "centre": args.centre,
                               "datasets": {}}  # fmt: skip
    panels: list[tuple[str, torch.Tensor, torch.Tensor]] = []
    curves: dict[str, dict[str, Points]] = {}
    for ds_name in datasets:
        ds = DATASETS[ds_name]
        per_method: dict[str, dict[str, list[float]]] = {}
        for seed in range(args.seed, args.seed + seeds):
            mix: MixtureData = ds["make"](torch.Generator().manual_seed(seed))
            held_out, train = _split(mix, seed)
            x = mix.x
            data_file = args.out / "beam-mog-data" / f"{ds_name}-s{seed}.npy"
            data_file.parent.mkdir(parents=True, exist_ok=True)
            np.save(data_file, train.numpy())
            steps = max(1, round(ds["epochs"] * scale * train.shape[0] / ds["batch"]))
            d = x.shape[1]
            for method in methods:
                if method in GENERATOR_METHODS and d != 2:
                    continue  # nrf's generator configs are 2-D networks
                progress(f"{ds_name} seed {seed}: {method}")
                cfg: dict[str, Any]
                base: Path | None
                if method in RBM_METHODS:
                    cfg, base = _rbm_config(method, ds, d, steps, sweeps, args.weight_std, args.centre), None
                else:
                    cfg, base = {"train": {"steps": steps}}, CONFIGS / f"{GENERATOR_METHODS[method]}.toml"
                cfg.setdefault("run", {})["seed"] = seed
                name = f"{ds_name}-{method}-s{seed}"
                data = ['data.name="npy"', f"data.path={str(data_file)!r}", "data.validation_fraction=0.0"]
                per_epoch = max(1, train.shape[0] // ds["batch"])
                curve = KLCurve(held_out, 200 if args.quick else 1000, per_epoch, _draw)
                every = -(-steps // args.curve_points) if args.curve_points and seed == args.seed else 0
                trainer, seconds = train_config(
                    cfg, args.out / "beam-mog-runs", name, args.threads, data, base=base,
                    evaluators=[curve.evaluator()] if every else [], eval_every=every,
                )  # fmt: skip
                seconds -= curve.seconds
                if curve.points:
                    curves.setdefault(ds_name, {})[LABELS[method]] = curve.points
                    per_method.setdefault(method, {})["curve"] = curve.points  # type: ignore[assignment]
                objective = trainer.objective
                ev = _evaluate(objective, mix, held_out, 5000, torch.Generator().manual_seed(seed + 999))
                entry = per_method.setdefault(method, {})
                for key in ("kl_forward", "kl_reverse", "covered_modes", "realistic_ratio"):
                    entry.setdefault(key, []).append(float(ev[key]))
                entry.setdefault("train_seconds", []).append(seconds)
                entry.setdefault("steps", []).append(steps)
                if seed == args.seed:
                    panels.append((f"{ds_name}: {LABELS[method]}", ev["samples"][:2000], mix.centres))
        oracle = _oracle(ds, args.seed, seeds)
        per_method["oracle"] = oracle
        results["datasets"][ds_name] = per_method
        for method, entry in per_method.items():
            cells = [f"{m:.2f} ± {s:.2f}" for m, s in (mean_sd(entry[k]) for k in
                     ("kl_forward", "kl_reverse", "covered_modes"))]  # fmt: skip
            rm, rs = mean_sd(entry["realistic_ratio"])
            secs = f"{mean_sd(entry['train_seconds'])[0]:.0f}" if "train_seconds" in entry else "-"
            label = "held-out data (oracle)" if method == "oracle" else LABELS[method]
            rows.append([ds_name, label, *cells, f"{rm:.3f} ± {rs:.3f}", secs])
    figures = [_figure(panels, args.out / "beam_mog_samples.png")] if panels else []
    if curves:
        figures.append(kl_curve_figure(curves, args.out / "beam_mog_kl.png"))
    headers = ["data", "model", "KL(data‖model)", "KL(model‖data)", "modes covered", "realistic ratio",
               "train s (per seed)"]  # fmt: skip
    notes = [
        f"{seeds} seed(s); epochs x {scale:g} of the paper's; {sweeps} sweeps per update; final models",
        "KL: kNN estimates (k = 1) against 10 % held-out rows; comparable within a data set, not across",
        "generator-based rows use nrf's GMM Table I settings (2-D only)",
    ]
    return BenchResult(markdown_table(headers, rows), results, figures, notes)


def _split(mix: MixtureData, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(held-out 10 %, training 90 %) of the mixture's rows in a random order (the rows are
    generated mode by mode)."""
    x = mix.x.float()[torch.randperm(mix.x.shape[0], generator=torch.Generator().manual_seed(seed + 1))]
    n_hold = x.shape[0] // 10
    return x[:n_hold], x[n_hold:]


def _oracle(ds: dict[str, Any], seed: int, seeds: int) -> dict[str, list[float]]:
    """The same metrics for fresh draws of the data itself (what a perfect model scores)."""
    out: dict[str, list[float]] = {}
    for s in range(seed, seed + seeds):
        mix: MixtureData = ds["make"](torch.Generator().manual_seed(s))
        fresh: MixtureData = ds["make"](torch.Generator().manual_seed(s + 10_000))
        held_out, _ = _split(mix, s)
        x = _split(fresh, s)[1][:5000]
        kl = knn_kl_pair(x, held_out, k=1, ties="drop")  # float32 draws can repeat (see the experiments page)
        modes = mode_metrics(x, mix.centres.to(x), float(mix.std))
        values = {"kl_forward": kl.forward, "kl_reverse": kl.reverse,
                  "covered_modes": modes.covered_modes, "realistic_ratio": modes.realistic_ratio}  # fmt: skip
        for key, value in values.items():
            out.setdefault(key, []).append(float(value))
    return out


def _figure(panels: list[tuple[str, torch.Tensor, torch.Tensor]], path: Path) -> Path:
    fig, axes = plots.new_figure(len(panels), size=2.8)
    for ax, (title, pts, centres) in zip(axes[0], panels, strict=True):
        if pts.shape[1] == 1:
            ax.hist(pts[:, 0].numpy(), bins=80, range=(-5, 5), density=True, color="tab:blue")
            ax.set_title(title, fontsize=8)
        else:
            plots.scatter_2d(ax, pts, centres, title, lim=3)
    return plots.save(fig, path)
