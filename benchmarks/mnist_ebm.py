"""Image EBMs on MNIST under a wall-time budget: sample quality (FID-MNIST, KID-MNIST,
IS-MNIST), speed, and the same recipe in ebmkit on the same network and budget.

Methods (each trained for ``--minutes`` of wall time on the CPU, final model):

* ``tutorial``: ``configs/mnist_tutorial.toml``, the EBM tutorial's MNIST example (003_…,
  section 11): its Swish CNN, 60 Langevin steps of size 10, gradient clip 0.03, noise
  0.005 before each step, replay buffer 8,192, alpha 0.1, Adam (0, 0.999) lr 1e-4 x0.97
  per epoch, data noise 0.005;
* ``nrf-ebmkit``: nrf's IGEBM objective with the settings of ebmkit 0.16.0's
  ``examples/train_mnist.py`` (clip 0.01, noise after the step, buffer 10,000 with 5 %
  restarts, alpha 1, Adam lr 1e-4 with torch's default betas, parameter average 0.999) on
  the tutorial's network: the like-for-like partner of
* ``ebmkit``: ebmkit's own ``ContrastiveDivergence`` + ``Trainer`` with those settings on
  the same network (same initial weights), fitted in chunks of 10 updates until the budget
  is spent;
* ``jem``: ``configs/mnist_jem.toml``, JEM on the tutorial's CNN with 10 logits (20 SGLD
  steps of size 1, noise 0.01, buffer 10,000, data noise 0.03, Adam lr 1e-4, batch 64),
  with its test accuracy and the conditional-sample accuracy (the share of samples drawn
  from E(x, y) that the feature network labels y);
* ``conditional``: ``configs/mnist_conditional_tutorial.toml``, the tutorial's recipe on its
  CNN with per-class gains and biases, E(x, y), negatives drawn for the batch's labels
  (IGEBM's conditional training): test accuracy by lowest energy, conditional-sample
  accuracy, and cross-class conversion (test digits of each class run on E(., b) for every
  class b: the share the feature network then labels b, and a 10 x 10 figure).

Every model is scored the same way: ``--samples`` images from its replay buffer (the newest)
and as many fresh chains from uniform noise run ``--sample-steps`` Langevin steps of its own
sampler (the averaged model where one is kept; the conditional model's chains run on
E(., y) with the classes in turn), against the MNIST test set on nrf's feature
network (``nrf data prepare mnist-features``; built on first use). Reference rows: as many
training images (the floor), the test set itself (its IS) and uniform noise. Speed: ms per
training update, and its ratio to (K + 1) x one forward + backward pass of the energy on a
batch (the input gradient of K Langevin steps plus the parameter update). Over training
(``--eval-every``), nrf's models log FID/KID/IS-MNIST of their newest 1,000 buffer images
against 1,000 random training images (the JSON's ``curve``; figures at that sample count,
so not comparable with the final table's). ``--set KEY=VALUE`` overrides a value of nrf's
configs (e.g. ``objective.args.conditional_negatives="joint"``), for measured variants of a
method; the JSON and the table's notes record them.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _peers import peer_version
from _runs import choose, train_config

from nrf import plots
from nrf.bench import BenchResult, markdown_table, progress
from nrf.data import load_mnist
from nrf.energies import TutorialCNNEnergy
from nrf.metrics import SampleQuality, SampleQualityMeter
from nrf.metrics.mnist_features import load_feature_network
from nrf.metrics.sample_quality import as_unit_images
from nrf.samplers import Langevin
from nrf.samplers import run as run_chains
from nrf.targets import BoltzmannTarget
from nrf.training.data import TrainingData
from nrf.training.evaluation import sample_quality_evaluator

NAME = "mnist-ebm"
DESCRIPTION = "image EBMs on MNIST: FID/KID/IS-MNIST of buffer and fresh samples, ms per update, vs ebmkit"
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
METHODS = ("tutorial", "nrf-ebmkit", "ebmkit", "jem", "conditional")
LABELS = {
    "tutorial": "nrf, tutorial config (003_… section 11)",
    "nrf-ebmkit": "nrf, ebmkit's example settings",
    "ebmkit": "ebmkit 0.16.0, its example settings",
    "jem": "nrf, JEM config",
    "conditional": "nrf, conditional tutorial config",
}
CONFIG_FILES = {
    "tutorial": "mnist_tutorial.toml",
    "jem": "mnist_jem.toml",
    "conditional": "mnist_conditional_tutorial.toml",
}
K = 60  # Langevin steps per update of the IGEBM-style methods (JEM: its config's 20)
EBMKIT_SETTINGS: dict[str, Any] = {
    "step_size": 10.0, "noise_scale": 0.005, "grad_clip": 0.01, "clamp": (-1.0, 1.0),
    "buffer": 10_000, "reinit_prob": 0.05, "energy_reg": 1.0, "lr": 1e-4, "ema": 0.999, "batch": 128,
}  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--methods", default=",".join(METHODS), help=f"subset of: {', '.join(METHODS)}")
    parser.add_argument("--minutes", type=float, default=None,
                        help="wall-time budget per model (default 30; quick 0.5)")  # fmt: skip
    parser.add_argument("--samples", type=int, default=None,
                        help="images scored per sample set (default 2,000; quick 200)")  # fmt: skip
    parser.add_argument("--sample-steps", type=int, default=None,
                        help="Langevin steps of the fresh chains (default 256; quick 20)")  # fmt: skip
    parser.add_argument("--eval-every", type=int, default=None,
                        help="FID/IS-MNIST of 1,000 buffer images every this many updates of nrf's "
                             "models, against training images (default 250; quick 0: never)")  # fmt: skip
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override for nrf's methods (repeatable), e.g. "
                             "objective.args.generative_start=2000; recorded in the JSON")  # fmt: skip


def _images(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST ``split`` as float images in [-1, 1], ``(n, 1, 28, 28)``, and labels."""
    data = load_mnist(split)
    images = torch.from_numpy(data.images.astype(np.float32) / 127.5 - 1.0).unsqueeze(1)
    return images, torch.from_numpy(data.labels.astype(np.int64))


def _nrf_config(method: str, steps: int, seed: int) -> tuple[dict[str, Any], Path | None]:
    if method in CONFIG_FILES:
        return {"run": {"seed": seed}, "train": {"steps": steps}}, CONFIGS / CONFIG_FILES[method]
    s = EBMKIT_SETTINGS
    return {
        "run": {"seed": seed},
        "data": {"name": "mnist", "scale": "symmetric", "validation_fraction": 0.0},
        "model": {"energy": "tutorial"},
        "objective": {"name": "igebm", "args": {
            "alpha": s["energy_reg"], "buffer_size": s["buffer"], "reinit_prob": s["reinit_prob"],
            "noise_range": [-1.0, 1.0]}},
        "sampler": {"name": "langevin", "step_size": s["step_size"], "noise_scale": s["noise_scale"],
                    "grad_clip": s["grad_clip"], "clamp": list(s["clamp"]), "steps": K},
        "optim": {"energy": {"name": "adam", "lr": s["lr"]}},
        "train": {"steps": steps, "batch_size": s["batch"], "ema": s["ema"]},
    }, None  # fmt: skip


def _fresh(energy: torch.nn.Module, sampler: Any, n: int, steps: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` chains from uniform noise in [-1, 1] after ``steps`` steps of nrf's ``sampler``."""
    energy.eval()
    out = []
    for size in [min(500, n - i) for i in range(0, n, 500)]:
        x0 = torch.rand(size, 1, 28, 28, generator=gen) * 2 - 1
        state, _ = run_chains(sampler, BoltzmannTarget(energy), sampler.init(x0), steps, generator=gen)
        out.append(state.x.detach())
    return torch.cat(out)


def _forward_backward_ms(
    energy: Any, batch: int, conditional: bool = False, blocks: int = 7, repeats: int = 15
) -> list[float]:
    """ms of one forward + input-gradient pass of ``energy`` on ``batch`` images (the
    Langevin step's cost; of E(x, y) for one label per image when ``conditional``),
    weights frozen: the median of ``repeats`` passes in each of ``blocks`` blocks, each
    block on new inputs after three untimed passes (the figure's spread across blocks shows
    how steady the machine was)."""
    labels = torch.arange(batch) % energy.n_classes if conditional else None
    flags = [p.requires_grad for p in energy.parameters()]
    energy.requires_grad_(False)
    medians = []
    try:
        for _ in range(blocks):
            x = torch.rand(batch, 1, 28, 28) * 2 - 1
            times = []
            for _ in range(repeats + 3):
                z = x.clone().requires_grad_(True)
                t = time.perf_counter()
                out = energy(z) if labels is None else energy.class_energy(z, labels)
                torch.autograd.grad(out.sum(), z)
                times.append(time.perf_counter() - t)
            medians.append(1000 * float(np.median(times[3:])))
    finally:
        for p, f in zip(energy.parameters(), flags, strict=True):
            p.requires_grad_(f)
    return medians


def _train_nrf(method: str, args: argparse.Namespace, seconds: float, train: torch.Tensor) -> dict[str, Any]:
    steps = 60 * 469  # the schedule's length (60 epochs); the budget ends the fit first
    cfg, base = _nrf_config(method, steps, args.seed)
    evaluators = []
    if args.eval_every:
        n = min(1000, train.shape[0])
        rows = torch.randperm(train.shape[0], generator=torch.Generator().manual_seed(args.seed + 3))[:n]
        data = TrainingData(train=train[rows], validation=None, kind="images")
        evaluators = [sample_quality_evaluator(data, n_samples=n, value_range=(-1.0, 1.0), seed=args.seed)]
    trainer, fit_seconds = train_config(
        cfg, args.out / "mnist-ebm-runs", method, args.threads,
        [f"train.max_seconds={seconds}", *args.overrides], base=base,
        checkpoint_every=500, log_every=1, evaluators=evaluators, eval_every=args.eval_every,
    )  # fmt: skip
    objective = trainer.objective
    return {
        "curve": _curve(trainer.layout.metrics),
        "energy": objective.energy, "sampler": objective.sampler, "steps": trainer.step,
        "seconds": fit_seconds, "buffer": objective.buffer.contents(args.samples),
        "batch": trainer.cfg.train.batch_size, "ms": _update_ms(trainer.layout.metrics),
        "k": objective.k, "objective": objective,
    }  # fmt: skip


def _records(log: Path, phase: str) -> list[dict[str, Any]]:
    """The records of ``phase`` in a run's ``metrics.jsonl``."""
    import json

    return [r for r in map(json.loads, log.read_text().splitlines()) if r.get("phase") == phase]


def _curve(log: Path) -> list[dict[str, float]]:
    """The sample-quality records of a run's log: step, seconds, FID/KID/IS-MNIST."""
    records = _records(log, "eval")
    keys = ("step", "time", "fid_mnist", "kid_mnist", "is_mnist")
    return [{k: r[k] for k in keys if k in r} for r in records if "fid_mnist" in r]


def _update_ms(log: Path, checkpoint_every: int = 500) -> float:
    """ms per update from the per-update log times: the mean time between consecutive
    updates, leaving out the first update (it builds the buffer and warms up) and the
    intervals that also hold an evaluation or a step checkpoint (loading, evaluation and
    checkpoints are outside the figure)."""
    times = [(r["step"], r["time"]) for r in _records(log, "train")]
    paused = {r["step"] for r in _records(log, "eval")}
    gaps = [(t1 - t0) for (s0, t0), (s1, t1) in itertools.pairwise(times[1:])
            if s1 == s0 + 1 and s0 not in paused and s0 % checkpoint_every]  # fmt: skip
    return 1000 * float(np.mean(gaps)) if gaps else float("nan")


def _train_ebmkit(args: argparse.Namespace, seconds: float, train: torch.Tensor) -> dict[str, Any]:
    import ebm

    s = EBMKIT_SETTINGS
    torch.manual_seed(args.seed)
    energy = TutorialCNNEnergy()
    sampler = ebm.LangevinDynamics(step_size=s["step_size"], noise_scale=s["noise_scale"],
                                   grad_clip=s["grad_clip"], steps=K, clamp=s["clamp"])  # fmt: skip
    buffer = ebm.ReplayBuffer(s["buffer"], (1, 28, 28), reinit_prob=s["reinit_prob"],
                              init_fn=lambda shape: torch.rand(shape) * 2 - 1)  # fmt: skip
    loss = ebm.ContrastiveDivergence(sampler, buffer=buffer, energy_reg=s["energy_reg"])
    trainer = ebm.Trainer(energy, loss, lr=s["lr"], ema_decay=s["ema"])
    start = time.perf_counter()
    trainer.fit(train, steps=1, batch_size=s["batch"], verbose=False)  # as nrf's: the first update apart
    first = time.perf_counter()
    while time.perf_counter() - start < seconds:
        trainer.fit(train, steps=10, batch_size=s["batch"], verbose=False)
    fit_seconds = time.perf_counter() - start
    ms = 1000 * (time.perf_counter() - first) / max(trainer.step_count - 1, 1)
    model = trainer.ema.module if trainer.ema is not None else energy
    rows = torch.randperm(buffer.data.shape[0], generator=torch.Generator().manual_seed(args.seed))
    nrf_sampler = Langevin(step_size=s["step_size"], noise_scale=s["noise_scale"], grad_clip=s["grad_clip"],
                           clamp=s["clamp"])  # fmt: skip
    return {
        "energy": model, "sampler": nrf_sampler, "steps": trainer.step_count, "seconds": fit_seconds,
        "buffer": buffer.data[rows[: args.samples]].clone(), "batch": s["batch"], "ms": ms, "k": K,
    }  # fmt: skip


def run(args: argparse.Namespace) -> BenchResult:
    minutes = args.minutes if args.minutes is not None else (0.5 if args.quick else 30.0)
    n = args.samples or (200 if args.quick else 2000)
    args.samples = n
    sample_steps = args.sample_steps or (20 if args.quick else 256)
    if args.eval_every is None:
        args.eval_every = 0 if args.quick else 250
    if args.eval_every < 0:
        raise ValueError(f"--eval-every: expected >= 0 updates, got {args.eval_every}")
    methods = choose(args.methods, list(METHODS), "--methods")
    if not minutes > 0 or n < 20 or sample_steps < 1:
        raise ValueError(f"need --minutes > 0, --samples >= 20, --sample-steps >= 1; got {minutes}, {n}, "
                         f"{sample_steps}")  # fmt: skip
    if "ebmkit" in methods and peer_version("ebmkit") is None:
        raise ImportError("--methods ebmkit: ebmkit is not installed (pip install ebmkit==0.16.0)")
    torch.set_num_threads(args.threads)
    network = load_feature_network(build=True)
    (train, _), (test, test_labels) = _images("train"), _images("test")
    reference = test if not args.quick else test[:1000]
    meter = SampleQualityMeter(network, reference, value_range=(-1.0, 1.0), kid_subset_size=min(1000, n),
                               kid_subsets=50, is_splits=5, seed=args.seed)  # fmt: skip
    gen = torch.Generator().manual_seed(args.seed)
    refs: dict[str, SampleQuality] = {
        "training images": meter(train[torch.randperm(train.shape[0], generator=gen)[:n]]),
        "test images": meter(reference[:n]),
        "uniform noise": meter(torch.rand(n, 1, 28, 28, generator=gen) * 2 - 1),
    }
    results: dict[str, Any] = {
        "minutes": minutes, "samples": n, "sample_steps": sample_steps, "K": K, "threads": args.threads,
        "feature_network": network.digest, "n_reference": meter.n_reference,
        "ebmkit": peer_version("ebmkit"), "overrides": list(args.overrides),
        "reference": {k: v.to_dict() for k, v in refs.items()},
        "methods": {},
    }  # fmt: skip
    rows: list[list[str]] = []
    panels: list[tuple[str, torch.Tensor]] = []
    figures: list[Path] = []
    for method in methods:
        progress(f"training {method} for {minutes:g} minutes")
        fit = _train_ebmkit(args, minutes * 60, train) if method == "ebmkit" else _train_nrf(
            method, args, minutes * 60, train)  # fmt: skip
        gen = torch.Generator().manual_seed(args.seed)
        conditional = bool(getattr(fit.get("objective"), "conditional", False))
        if conditional:  # chains from noise on E(., y), classes in turn
            y = torch.arange(n) % fit["energy"].n_classes
            noise = torch.rand(n, 1, 28, 28, generator=gen) * 2 - 1
            fresh = fit["objective"].conditional_sample(y, gen, start=noise, steps=sample_steps)
        else:
            fresh = _fresh(fit["energy"], fit["sampler"], n, sample_steps, gen)
        quality = {"buffer": meter(fit["buffer"]), "fresh": meter(fresh)}
        ms, k = fit["ms"], fit["k"]
        blocks = _forward_backward_ms(fit["energy"], fit["batch"], conditional)
        fb = float(np.median(blocks))
        entry: dict[str, Any] = {
            "steps": fit["steps"], "train_seconds": fit["seconds"], "ms_per_update": ms, "K": k,
            "forward_backward_ms": fb, "forward_backward_ms_blocks": blocks,
            "ratio_to_k_plus_1_passes": ms / ((k + 1) * fb),
            "ratio_range": [ms / ((k + 1) * max(blocks)), ms / ((k + 1) * min(blocks))],
            **{kind: q.to_dict() for kind, q in quality.items()}, "curve": fit.get("curve", []),
        }  # fmt: skip
        accuracy = ""
        if callable(getattr(fit["energy"], "logits", None)):
            entry.update(_classes(fit, network, test, test_labels, n, sample_steps, args.seed,
                                  fresh if conditional else None))  # fmt: skip
            accuracy = f"{entry['test_accuracy']:.4f} / {entry['conditional_sample_accuracy']:.3f}"
        if conditional:
            sources, converted, share = _conversion(
                fit["objective"], network, test, test_labels, sample_steps, args.seed
            )
            entry["conversion_accuracy"] = share
            accuracy += f" / conv. {share:.3f}"
            path = args.out / "mnist_ebm_conversion.png"
            figures.append(_conversion_figure(sources, converted, sample_steps, path))
        results["methods"][method] = entry
        for kind, q in quality.items():
            speed = [str(fit["steps"]), f"{ms:.0f}", f"{ms / ((k + 1) * fb):.2f}"]
            rows.append([LABELS[method], kind, *_cells(q), accuracy, *speed])
        panels += [(f"{method}: buffer", fit["buffer"][:50]), (f"{method}: fresh chains", fresh[:50])]
    for label, q in refs.items():
        rows.append([label, "reference", *_cells(q), "-", "-", "-", "-"])
    if panels:
        figures.insert(0, _figure(panels, args.out / "mnist_ebm_samples.png"))
    headers = ["model", "samples", "FID-MNIST", "KID-MNIST", "IS-MNIST", "test acc. / cond. acc.", "updates",
               "ms / update", "/ (K+1) passes"]  # fmt: skip
    notes = [
        f"{minutes:g} min of training per model, {args.threads} thread(s); final models (averaged if kept)"
        + (f"; nrf's configs with {', '.join(args.overrides)}" if args.overrides else ""),
        f"{n} samples per set: the newest of the replay buffer, and fresh chains of {sample_steps} steps "
        "from uniform noise; scored against the MNIST test set",
        f"FID/KID/IS-MNIST: nrf's digit CNN (sha256 {str(network.digest)[:12]}), not Inception figures",
        "'/ (K+1) passes': ms per update over (K + 1) x one forward + input-gradient pass on a batch "
        f"(K = {K}; JEM 20), the pass timed after the fit (median of 7 blocks; the JSON holds each block)",
        "class energies: test accuracy of the lowest energy E(x, y) on the MNIST test set / the share of "
        f"samples from E(x, y) ({sample_steps} steps from noise, 10 classes) the feature network labels y",
        f"conv.: cross-class conversion, 10 test digits per class run {sample_steps} steps on E(., b) "
        "for each other class b; the share the feature network labels b",
    ]
    return BenchResult(markdown_table(headers, rows), results, figures, notes)


def _cells(q: SampleQuality) -> list[str]:
    """FID, KID and IS cells of a table row."""
    return [
        f"{q.fid:.2f}",
        f"{q.kid:.2f} ± {q.kid_std:.2f}",
        f"{q.inception_score:.2f} ± {q.inception_score_std:.2f}",
    ]


def _classes(
    fit: dict[str, Any],
    network: Any,
    test: torch.Tensor,
    labels: torch.Tensor,
    n: int,
    steps: int,
    seed: int,
    samples: torch.Tensor | None = None,
) -> dict[str, float]:
    """Test accuracy of a class energy, and the share of its conditional samples (``n``
    chains, classes in turn; drawn here from the buffer's starts unless ``samples`` gives
    them) that the feature network labels with their class."""
    energy = fit["energy"]
    accuracy = float((energy.predict(test) == labels).float().mean())
    y = torch.arange(n) % energy.n_classes
    if samples is None:
        samples = fit["objective"].conditional_sample(y, torch.Generator().manual_seed(seed + 5), steps=steps)
    predicted = network.logits(as_unit_images("samples", samples, (-1.0, 1.0))).argmax(1)
    return {"test_accuracy": accuracy, "conditional_sample_accuracy": float((predicted == y).float().mean())}


def _conversion(
    objective: Any,
    network: Any,
    test: torch.Tensor,
    labels: torch.Tensor,
    steps: int,
    seed: int,
    per_class: int = 10,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Cross-class conversion: ``per_class`` test digits of each class a run ``steps`` steps
    on E(., b) for every class b. Returns the first digit of each class, shape
    ``(C, 1, 28, 28)``, what it became on each E(., b), ``(C, C, 1, 28, 28)``, and the share
    of all a != b conversions that the feature network labels b."""
    c = objective.energy.n_classes
    picks = torch.cat([torch.nonzero(labels == a).flatten()[:per_class] for a in range(c)])
    if picks.shape[0] != c * per_class:
        raise ValueError(f"the test set holds fewer than {per_class} digits of some class")
    start = test[picks].repeat_interleave(c, dim=0)  # (a, digit, b) order
    target = torch.arange(c).repeat(c * per_class)
    gen = torch.Generator().manual_seed(seed + 11)
    out = objective.conditional_sample(target, gen, start=start, steps=steps)
    predicted = network.logits(as_unit_images("converted", out, (-1.0, 1.0))).argmax(1)
    other = labels[picks].repeat_interleave(c) != target
    share = float((predicted[other] == target[other]).float().mean())
    first = out.view(c, per_class, c, 1, 28, 28)[:, 0]
    return test[picks].view(c, per_class, 1, 28, 28)[:, 0], first, share


def _conversion_figure(sources: torch.Tensor, converted: torch.Tensor, steps: int, path: Path) -> Path:
    """Row a: a test digit of class a, then what it becomes on E(., b) for b = 0..C-1."""
    grid = torch.cat([sources.unsqueeze(1), converted], dim=1)
    fig, axes = plots.new_figure(1, size=5.0)
    title = f"cross-class conversion, {steps} steps: test digit, then on E(., b) for b = 0..9"
    plots.image_grid(axes[0, 0], grid.flatten(0, 1), ncol=grid.shape[1], value_range=(-1.0, 1.0), title=title)
    return plots.save(fig, path)


def _figure(panels: list[tuple[str, torch.Tensor]], path: Path) -> Path:
    fig, axes = plots.new_figure(ncols=2, nrows=-(-len(panels) // 2), size=3.6)
    for ax, (title, images) in zip(axes.flat, panels, strict=False):
        plots.image_grid(ax, images, ncol=10, title=title, value_range=(-1.0, 1.0))
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_axis_off()
    return plots.save(fig, path)
