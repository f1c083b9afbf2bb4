"""BEAM Fig. 5-6 / Table II (004_…): RBMs, RBM + driven sampler and BEAM on MNIST, with
scikit-learn's ``BernoulliRBM`` side by side on binarized MNIST.

Data (fixed once per seed): the 60,000 training images, 10 % held out for the kNN KL, the
other 54,000 trained on; the 10,000 test images for the AIS log-likelihood.

* ``continuous``: grey levels dequantized, (pixel + u) / 256 with u ~ U(0, 1) drawn once
  (a Gaussian visible unit of a pixel that is 0 in every image would otherwise shrink its
  variance without bound); Gaussian-Bernoulli RBMs with 200 hidden units (Table II).
* ``binary``: every pixel drawn once from Bernoulli(pixel / 255) (Salakhutdinov & Murray's
  binarization); Bernoulli RBMs with 500 hidden units (the issue's AIS target).

Methods (Table II: batch 100, 5 sweeps per update on 100 persistent fantasy particles,
Adam (0.5, 0.9) at lr 1e-3 for 25 epochs and 1e-4 for 30 more, weights N(0, 0.01^2)):

* ``rbm``: PCD with block Gibbs;
* ``rbm-tds``: PCD with temperature-driven sampling (beta sd 0.9, autocorrelation 0.9);
* ``beam``: the same, maximum likelihood for 25 epochs, then C = -0.1 L - 0.9 A with the
  distance-weighted critic (k = 2) on the hidden activations;
* ``beam-gibbs``: BEAM with block Gibbs instead of the driven sampler (not in the paper;
  separates the adversary's effect from the sampler's);
* ``pcd1`` (binary): nrf's PCD with scikit-learn's algorithm and settings: one Gibbs sweep
  per update, plain SGD at lr 0.05 (sklearn's gradient is the batch mean), 100 particles;
* ``sklearn`` (binary): ``BernoulliRBM(n_components=500, batch_size=100,
  learning_rate=0.05)``, one ``partial_fit`` per minibatch (what its ``fit`` does per
  batch), its weights copied into an nrf RBM for scoring.

Every model is scored as trained (final model) the same way, and so are the curves (every
``--eval-every`` epochs): samples of fresh chains, started from uniform noise (Bernoulli(0.5)
pixels / U(0, 1) grey levels) and run for 100 block-Gibbs sweeps at the model's own
temperature (the paper's Fig. 6 procedure), against held-out rows: kNN estimates (k = 1) of
the forward KL D(data || model) and reverse KL D(model || data). Binary RBMs also get the
AIS estimate of log Z (100 chains, Salakhutdinov & Murray's 14,500-temperature ladder,
base rates from the training data) and the mean test log-likelihood with its standard
error from the AIS spread. ``s / epoch`` excludes evaluation time. The speed rows time one
epoch of ``pcd1`` against one of ``sklearn`` alternately in this process, at the same
thread count (numpy's BLAS limited with threadpoolctl).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _runs import KLCurve, choose, kl_curve_figure, train_config

from nrf import plots
from nrf.bench import BenchResult, markdown_table, mean_sd, progress
from nrf.data import load_mnist
from nrf.energies import RBM
from nrf.metrics import ais_log_partition, knn_kl_pair, rbm_log_likelihood
from nrf.samplers.gibbs import gibbs_sweep

NAME = "beam-mnist"
DESCRIPTION = "BEAM Fig. 5-6: RBM, RBM + driven sampler, BEAM on MNIST (kNN KL curves, AIS), vs sklearn"

PARTS: dict[str, dict[str, Any]] = {
    "continuous": {"visible": "gaussian", "hidden": 200, "methods": ("rbm", "rbm-tds", "beam", "beam-gibbs")},
    "binary": {"visible": "bernoulli", "hidden": 500,
               "methods": ("rbm", "rbm-tds", "beam", "beam-gibbs", "pcd1", "sklearn")},
}  # fmt: skip
LABELS = {
    "rbm": "RBM (PCD, Gibbs)", "rbm-tds": "RBM (PCD, driven sampler)", "beam": "BEAM (driven sampler)",
    "beam-gibbs": "BEAM (block Gibbs)",
    "pcd1": "nrf PCD-1, SGD (sklearn's algorithm)", "sklearn": "scikit-learn BernoulliRBM",
}  # fmt: skip
ML_EPOCHS, ADV_EPOCHS = 25, 30  # Table II
S_AND_M_LADDER = (500, 4_000, 10_000)  # 0-0.5, 0.5-0.9, 0.9-1 (Salakhutdinov & Murray 2008)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--parts", default="continuous,binary", help="comma-separated subset")
    parser.add_argument("--methods", default="rbm,rbm-tds,beam,pcd1,sklearn",
                        help="rbm, rbm-tds, beam, beam-gibbs, pcd1, sklearn (last two: binary)")  # fmt: skip
    parser.add_argument("--epochs-scale", type=float, default=None,
                        help="multiply the 25 + 30 epochs (default 1; quick 0.04)")  # fmt: skip
    parser.add_argument(
        "--rows", type=int, default=None, help="training images used (default all; quick 3,000)"
    )
    parser.add_argument("--eval-every", type=float, default=None,
                        help="epochs between kNN KL points (default 5; quick 1)")  # fmt: skip
    parser.add_argument("--speed-only", action="store_true", help="only the pcd1 / sklearn speed rows")
    parser.add_argument("--speed-repeats", type=int, default=None,
                        help="pcd1 / sklearn epochs timed in turn (default 3; quick 1; 0: none)")  # fmt: skip


def _data(part: str, rows: int | None, seed: int) -> dict[str, torch.Tensor]:
    """(train, held-out, test) rows of ``part``, flat, float32, in a fixed random order."""
    gen = np.random.default_rng(seed + 31)
    out: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        pixels = load_mnist(split).images.reshape(-1, 784).astype(np.float32)
        if part == "continuous":
            out[split] = (pixels + gen.random(pixels.shape, dtype=np.float32)) / 256.0
        else:
            out[split] = (gen.random(pixels.shape, dtype=np.float32) < pixels / 255.0).astype(np.float32)
    x = out["train"][gen.permutation(out["train"].shape[0])]
    if rows is not None:
        x = x[:rows]
    n_hold = x.shape[0] // 10
    return {
        "held_out": torch.from_numpy(x[:n_hold].copy()),
        "train": torch.from_numpy(x[n_hold:].copy()),
        "test": torch.from_numpy(out["test"][: max(rows // 6, 100) if rows else None].copy()),
    }


def fresh_samples(
    rbm: RBM, n: int, sweeps: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` chains from uniform noise after ``sweeps`` block-Gibbs sweeps at beta = 1:
    ``(samples v, E[v | h] of the last sweep)``."""
    shape = (n, rbm.n_visible)
    v = torch.rand(shape, generator=generator)
    if not rbm.gaussian:
        v = (v < 0.5).float()
    mean = v
    for i in range(sweeps):
        v, _, m = gibbs_sweep(rbm, v, 1.0, generator, mean_field_visible=i == sweeps - 1)
        mean = m if m is not None else mean
    return v.reshape(shape), mean.reshape(shape)


def _rbm_config(method: str, spec: dict[str, Any], steps: int, per_epoch: int, ml_epochs: int,
                sweeps: int, seed: int) -> dict[str, Any]:  # fmt: skip
    energy = {"n_visible": 784, "n_hidden": spec["hidden"], "visible": spec["visible"], "weight_std": 0.01}
    cfg: dict[str, Any] = {
        "run": {"seed": seed},
        "model": {"energy": "rbm", "init_batch": 1, "energy_args": energy},
        "objective": {"name": "cd", "args": {"start": "persistent", "n_particles": 100}},
        "sampler": {"name": "gibbs", "steps": sweeps},
        "optim": {"energy": {"name": "adam", "lr": 1e-3, "betas": [0.5, 0.9]}},
        "train": {"steps": steps, "batch_size": 100,
                  "lr_schedule": {"name": "multistep", "milestones": [ml_epochs], "gamma": 0.1}},
    }  # fmt: skip
    if method in ("rbm-tds", "beam"):
        cfg["sampler"] = {"name": "tds", "beta_std": 0.9, "autocorrelation": 0.9, "steps": sweeps}
    if method in ("beam", "beam-gibbs"):
        beam = {
            "gamma": 0.1,
            "critic": "dnn",
            "critic_k": 2,
            "warmup": ml_epochs * per_epoch,
            "n_particles": 100,
        }
        cfg["objective"] = {"name": "beam", "args": beam}
    if method == "pcd1":
        cfg["sampler"] = {"name": "gibbs", "steps": 1}
        cfg["optim"] = {"energy": {"name": "sgd", "lr": 0.05}}
        cfg["train"]["lr_schedule"] = "constant"
    return cfg


def _sklearn_rbm(hidden: int, seed: int) -> Any:
    from sklearn.neural_network import BernoulliRBM

    return BernoulliRBM(n_components=hidden, batch_size=100, learning_rate=0.05, n_iter=1, random_state=seed)


def _sklearn_epoch(model: Any, x: np.ndarray) -> float:
    """One epoch of ``model`` over ``x`` in batches of 100 (as its ``fit`` loops); seconds."""
    start = time.perf_counter()
    for i in range(0, x.shape[0], 100):
        model.partial_fit(x[i : i + 100])
    return time.perf_counter() - start


def as_nrf_rbm(model: Any) -> RBM:
    """A fitted ``BernoulliRBM`` as an nrf RBM: sklearn's E(v, h) = -v^T W^T h - b^T v - c^T h
    with W = ``components_`` (hidden x visible), b / c the visible / hidden intercepts."""
    w = torch.from_numpy(np.asarray(model.components_, dtype=np.float32))
    rbm = RBM(w.shape[1], w.shape[0], "bernoulli", weight_std=0.0)
    with torch.no_grad():
        rbm.weight.copy_(w.T)
        rbm.visible_bias.copy_(torch.from_numpy(np.asarray(model.intercept_visible_, dtype=np.float32)))
        rbm.hidden_bias.copy_(torch.from_numpy(np.asarray(model.intercept_hidden_, dtype=np.float32)))
    return rbm


def _train_sklearn(spec: dict[str, Any], data: dict[str, torch.Tensor], epochs: int, curve: KLCurve,
                   eval_epochs: set[int], seed: int, threads: int) -> tuple[RBM, float]:  # fmt: skip
    from threadpoolctl import threadpool_limits

    x = data["train"].numpy().astype(np.float64)
    model = _sklearn_rbm(spec["hidden"], seed)
    gen = torch.Generator().manual_seed(seed + 5)
    order = np.random.default_rng(seed)
    seconds = 0.0
    for epoch in range(1, epochs + 1):
        with threadpool_limits(limits=threads):
            seconds += _sklearn_epoch(model, x[order.permutation(x.shape[0])])
        if epoch in eval_epochs or epoch == epochs:
            curve.score(as_nrf_rbm(model), float(epoch), gen)
    return as_nrf_rbm(model), seconds


def _ais(rbm: RBM, data: dict[str, torch.Tensor], quick: bool, seed: int) -> dict[str, float]:
    pieces = (torch.linspace(0, 0.5, (50 if quick else S_AND_M_LADDER[0]) + 1),
              torch.linspace(0.5, 0.9, (200 if quick else S_AND_M_LADDER[1]) + 1)[1:],
              torch.linspace(0.9, 1.0, (250 if quick else S_AND_M_LADDER[2]) + 1)[1:])  # fmt: skip
    est = ais_log_partition(rbm, 100, betas=torch.cat(pieces), base="data", data=data["train"],
                            generator=torch.Generator().manual_seed(seed + 77))  # fmt: skip
    with torch.no_grad():
        ll = rbm_log_likelihood(rbm, data["test"], est)
    return {"test_ll": ll, "log_z": est.log_z, "log_z_sd": est.log_z_sd, "ais_ess": est.ess}


def _speed(x: torch.Tensor, hidden: int, repeats: int, threads: int, out: Path, seed: int) -> dict[str, Any]:
    """Alternated epochs of nrf's ``pcd1`` and sklearn's BernoulliRBM on the rows ``x``."""
    from threadpoolctl import threadpool_limits

    per_epoch = x.shape[0] // 100
    data_file = out / "beam-mnist-data" / "speed.npy"
    data_file.parent.mkdir(parents=True, exist_ok=True)
    np.save(data_file, x.numpy())
    data = ['data.name="npy"', f"data.path={str(data_file)!r}", "data.validation_fraction=0.0"]
    cfg = _rbm_config("pcd1", {"hidden": hidden, "visible": "bernoulli"}, per_epoch, per_epoch, 1, 1, seed)
    x64 = x.numpy().astype(np.float64)
    nrf_s, sk_s = [], []
    model = _sklearn_rbm(hidden, seed)
    model.partial_fit(x64[:100])
    for _ in range(repeats):
        _, seconds = train_config(
            cfg, out / "beam-mnist-runs", "speed-pcd1", threads, data, checkpoint_every=0
        )
        nrf_s.append(seconds)
        with threadpool_limits(limits=threads):
            sk_s.append(_sklearn_epoch(model, x64))
    ratios = [s / n for s, n in zip(sk_s, nrf_s, strict=True)]
    return {"rows": x.shape[0], "nrf_seconds": nrf_s, "sklearn_seconds": sk_s, "ratios": ratios}


def run(args: argparse.Namespace) -> BenchResult:
    quick = bool(args.quick)
    scale = args.epochs_scale or (0.04 if quick else 1.0)
    rows = args.rows or (3000 if quick else None)
    eval_every = args.eval_every or (1.0 if quick else 5.0)
    repeats = args.speed_repeats if args.speed_repeats is not None else (1 if quick else 3)
    sweeps_eval = 20 if quick else 100
    n_eval = 200 if quick else 1000
    n_final = 300 if quick else 5000
    parts = choose(args.parts, list(PARTS), "--parts")
    methods = choose(args.methods, list(LABELS), "--methods")
    ml_epochs = max(1, round(ML_EPOCHS * scale))
    epochs = ml_epochs + max(1, round(ADV_EPOCHS * scale))
    results: dict[str, Any] = {"epochs": [ml_epochs, epochs - ml_epochs], "parts": {}, "seed": args.seed}
    rows_out: list[list[str]] = []
    curves: dict[str, dict[str, list[tuple[float, float, float]]]] = {}
    panels: list[tuple[str, torch.Tensor]] = []
    out_runs = args.out / "beam-mnist-runs"
    n_train = 0
    for part in [] if args.speed_only else parts:
        spec = PARTS[part]
        data = _data(part, rows, args.seed)
        held, n_train = data["held_out"], data["train"].shape[0]
        per_epoch = data["train"].shape[0] // 100
        data_file = args.out / "beam-mnist-data" / f"{part}.npy"
        data_file.parent.mkdir(parents=True, exist_ok=True)
        np.save(data_file, data["train"].numpy())
        overrides = ['data.name="npy"', f"data.path={str(data_file)!r}", "data.validation_fraction=0.0"]
        per_part: dict[str, Any] = {}
        eval_epochs = {round(e) for e in np.arange(eval_every, epochs + 1e-9, eval_every)}
        for method in methods:
            if method not in spec["methods"]:
                continue
            progress(f"{part}: {method}")
            draw = lambda rbm, n, g: fresh_samples(rbm, n, sweeps_eval, g)[0]  # noqa: E731
            curve = KLCurve(held, n_eval, per_epoch, draw, pick=lambda objective: objective.energy)
            if method == "sklearn":
                rbm, train_s = _train_sklearn(spec, data, epochs, curve, eval_epochs, args.seed, args.threads)
            else:
                cfg = _rbm_config(method, spec, epochs * per_epoch, per_epoch, ml_epochs, 5, args.seed)
                trainer, seconds = train_config(cfg, out_runs, f"{part}-{method}", args.threads, overrides,
                                                evaluators=[curve.evaluator()],
                                                eval_every=max(1, round(eval_every * per_epoch)))  # fmt: skip
                rbm, train_s = trainer.objective.energy, seconds - curve.seconds
            rbm.eval()
            gen = torch.Generator().manual_seed(args.seed + 999)
            with torch.no_grad():
                samples, means = fresh_samples(rbm, n_final, 100 if not quick else sweeps_eval, gen)
            kl = knn_kl_pair(samples, held[:n_final], k=1, ties="drop")
            entry: dict[str, Any] = {"kl_forward": float(kl.forward), "kl_reverse": float(kl.reverse),
                                     "seconds_per_epoch": train_s / epochs,
                                     "curve": curve.points}  # fmt: skip
            if not rbm.gaussian:
                entry.update(_ais(rbm, data, quick, args.seed))
            per_part[method] = entry
            curves.setdefault(part, {})[method] = curve.points
            panels.append((f"{part}: {LABELS[method]}", means[:16].reshape(16, 1, 28, 28)))
        oracle = knn_kl_pair(data["train"][:n_final], held[:n_final], k=1, ties="drop")
        per_part["oracle"] = {"kl_forward": float(oracle.forward), "kl_reverse": float(oracle.reverse)}
        results["parts"][part] = per_part
        for method, entry in per_part.items():
            label = "training rows (oracle)" if method == "oracle" else LABELS[method]
            ll = f"{entry['test_ll']:.2f} ± {entry['log_z_sd']:.2f}" if "test_ll" in entry else "-"
            secs = f"{entry['seconds_per_epoch']:.2f}" if "seconds_per_epoch" in entry else "-"
            rows_out.append(
                [part, label, f"{entry['kl_forward']:.2f}", f"{entry['kl_reverse']:.2f}", ll, secs]
            )
    if args.speed_only and (not repeats or "binary" not in parts):
        raise ValueError(
            f"--speed-only times binary-MNIST epochs: it needs --speed-repeats >= 1 (got {repeats}) and "
            f"'binary' in --parts (got {args.parts!r})"
        )
    if repeats and "binary" in parts:
        speed_rows = _data("binary", rows, args.seed)["train"][: 1000 if quick else None]
        speed = _speed(speed_rows, PARTS["binary"]["hidden"], repeats, args.threads, args.out, args.seed)
        results["speed"] = speed
        m, s = mean_sd(speed["ratios"])
        nrf_s, sk_s = mean_sd(speed["nrf_seconds"])[0], mean_sd(speed["sklearn_seconds"])[0]
        rows_out.append(["binary", f"speed: sklearn s / nrf s per epoch ({speed['rows']} rows, "
                         f"{args.threads} thread(s))", "-", "-", "-",
                         f"{nrf_s:.2f} vs {sk_s:.2f}: {m:.2f} ± {s:.2f} x"])  # fmt: skip
    figures = []
    if curves:
        labelled = {part: {LABELS[m]: pts for m, pts in per.items()} for part, per in curves.items()}
        figures.append(kl_curve_figure(labelled, args.out / "beam_mnist_kl.png", switch=ml_epochs))
    if panels:
        figures.append(_panel_figure(panels, args.out / "beam_mnist_particles.png"))
    headers = [
        "data",
        "model",
        "KL(data‖model)",
        "KL(model‖data)",
        "AIS test LL (nats ± AIS sd)",
        "s / epoch",
    ]
    notes = [
        f"{ml_epochs} + {epochs - ml_epochs} epochs (maximum likelihood, then lr x0.1 and BEAM's adversary); "
        f"{n_train} training rows; one seed ({args.seed}); final models",
        f"samples: {n_final} fresh chains from noise, {100 if not quick else sweeps_eval} Gibbs sweeps; "
        "kNN KL (k = 1) against held-out rows, comparable within a part only",
        "AIS: 100 chains, data-based base rates; the LL's ± is the log Z estimate's sd",
    ]
    if args.speed_only:
        notes = []
    if "speed" in results:
        notes.append("speed: one epoch each, in turn; nrf's time is its whole training loop (logging and "
                     "the epoch's checkpoint included), sklearn's its partial_fit calls")  # fmt: skip
    return BenchResult(markdown_table(headers, rows_out), results, figures, notes)


def _panel_figure(panels: list[tuple[str, torch.Tensor]], path: Path) -> Path:
    fig, axes = plots.new_figure(len(panels), size=2.6)
    for ax, (title, images) in zip(axes[0], panels, strict=True):
        plots.image_grid(ax, images.clamp(0, 1), ncol=4, title=title)
    return plots.save(fig, path)
