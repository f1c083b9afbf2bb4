"""Periodic evaluation hooks: metrics and figures written into the run directory.

An evaluator is ``evaluator(objective, step, run_dir, generator) -> dict[str, float]``;
it draws its own random numbers from ``generator`` (seeded from the step), so evaluating
never changes the training run's random stream. Evaluators are registered by name in
:data:`EVALUATORS` (``train.evaluators`` of a config, e.g. ``["points", {name = "samples",
n_samples = 16}]``); without that list a run evaluates what suits its data
(:func:`default_evaluators`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nrf import plots
from nrf._checks import check_choice, check_positive_int
from nrf.metrics import knn_kl_pair, mode_metrics
from nrf.metrics.knn_kl import TIES
from nrf.objectives import Objective
from nrf.registry import Registry
from nrf.training.data import TrainingData
from nrf.training.ensemble import member_energies, member_energy, members
from nrf.training.rundir import RunDir

Evaluator = Callable[[Objective, int, Path, torch.Generator], dict[str, float]]

EVALUATORS: Registry[Evaluator] = Registry("evaluator")
"""Evaluators by name; the run's :class:`~nrf.training.data.TrainingData` is their context."""


@EVALUATORS.register("points", context=("data",))
def points_evaluator(data: TrainingData, n_samples: int = 10_000) -> Evaluator:
    """2-D data: density heat map of exp(-E) with the data (and mode centres), and model
    samples; 1-D data: histograms of samples and data. With known mode centres, also the
    mode metrics of Inclusive-NRF Table I on ``n_samples`` samples (batches of 100); for
    objectives with an auxiliary generator, for its samples too (``generation_*``)."""
    x = data.train
    lim = float(x.abs().max()) * 1.15

    def evaluate(objective: Objective, step: int, run_dir: Path, gen: torch.Generator) -> dict[str, float]:
        models = members(objective)
        samples = objective.sample(n_samples * models, gen).detach().cpu()
        metrics: dict[str, float] = {}
        if data.centres is not None and data.std is not None:
            metrics.update(_mode_summary("", samples, models, data.centres, data.std))
            generation = getattr(objective, "sample_generation", None)
            if generation is not None:
                drawn = generation(n_samples * models, gen).detach().cpu()
                metrics.update(_mode_summary("generation_", drawn, models, data.centres, data.std))
        samples = samples[:1000]
        fig, axes = plots.new_figure(2)
        if x.shape[1] == 2:
            which = 0 if models > 1 else None
            tag = " (model 0)" if models > 1 else ""
            plots.energy_heatmap(
                axes[0, 0],
                lambda g: member_energy(objective, g, which),
                lim,
                data.centres,
                f"-E(x){tag}, step {step}",
            )
            plots.scatter_2d(axes[0, 1], samples, data.centres, f"samples{tag}, step {step}", lim=lim)
        else:
            axes[0, 0].hist(x[:, 0].numpy(), bins=60, color="tab:gray")
            axes[0, 0].set_title("data", fontsize=9)
            axes[0, 1].hist(samples[:, 0].numpy(), bins=60, color="tab:blue")
            axes[0, 1].set_title(f"samples, step {step}", fontsize=9)
        plots.save(fig, RunDir(run_dir).plot("density", step))
        return metrics

    return evaluate


def _mode_summary(
    prefix: str, samples: torch.Tensor, models: int, centres: torch.Tensor, std: float
) -> dict[str, float]:
    """Mode metrics per model (blocks of rows), as the mean over models and, for several
    models, their standard deviation."""
    per_model = [mode_metrics(block, centres, std) for block in samples.chunk(models)]
    covered = torch.tensor([m.covered_modes for m in per_model])
    realistic = torch.tensor([m.realistic_ratio for m in per_model])
    out = {
        f"{prefix}covered_modes": float(covered.mean()),
        f"{prefix}realistic_ratio": float(realistic.mean()),
    }
    if models > 1:
        out[f"{prefix}covered_modes_sd"] = float(covered.std())
        out[f"{prefix}realistic_ratio_sd"] = float(realistic.std())
    return out


@EVALUATORS.register("samples", context=("data",))
def image_evaluator(data: TrainingData | None = None, n_samples: int = 64) -> Evaluator:
    """Image data: a grid of ``n_samples`` model samples."""

    def evaluate(objective: Objective, step: int, run_dir: Path, gen: torch.Generator) -> dict[str, float]:
        samples = objective.sample(n_samples, gen).detach().cpu()
        fig, axes = plots.new_figure(1, size=6)
        plots.image_grid(axes[0, 0], samples, ncol=8, title=f"samples, step {step}")
        plots.save(fig, RunDir(run_dir).plot("samples", step))
        return {}

    return evaluate


@EVALUATORS.register("chains", context=("data",))
def chain_evaluator(
    data: TrainingData | None = None, n_chains: int = 8, steps: int = 64, frames: int = 8
) -> Evaluator:
    """Image data, MCMC-trained objectives (cd, igebm, jem, ...): ``n_chains`` chains from
    uniform noise run ``steps`` sampler steps, shown every ``steps / frames`` steps (one row
    per chain, its first column the noise it started from)."""
    check_positive_int("n_chains", n_chains)
    check_positive_int("frames", frames)
    if check_positive_int("steps", steps) < frames:
        raise ValueError(f"steps ({steps}) must be at least frames ({frames})")

    def evaluate(objective: Objective, step: int, run_dir: Path, gen: torch.Generator) -> dict[str, float]:
        starts, advance = getattr(objective, "sample_starts", None), getattr(objective, "negatives", None)
        if not callable(starts) or not callable(advance):
            raise TypeError(
                f"the chains evaluator needs an MCMC-trained objective, got {type(objective).__name__}"
            )
        x = starts(n_chains, gen, "noise")
        shown = [x.detach().cpu()]
        done = 0
        for i in range(frames):
            share = steps * (i + 1) // frames - done
            x = advance(x, gen, steps=share)
            done += share
            shown.append(x.detach().cpu())
        grid = torch.stack(shown, dim=1).flatten(0, 1)  # chain-major: one row per chain
        fig, axes = plots.new_figure(1, size=max(4.0, 0.6 * (frames + 1)))
        plots.image_grid(axes[0, 0], grid, ncol=frames + 1, title=f"chains over {steps} steps, step {step}")
        plots.save(fig, RunDir(run_dir).plot("chains", step))
        return {}

    return evaluate


@EVALUATORS.register("sample-quality", context=("data",))
def sample_quality_evaluator(
    data: TrainingData,
    n_samples: int = 1000,
    source: str = "buffer",
    value_range: tuple[float, float] | None = None,
    seed: int = 0,
) -> Evaluator:
    """MNIST-shaped images: FID-MNIST, KID-MNIST and IS-MNIST of ``n_samples`` model
    samples (:mod:`nrf.metrics.sample_quality`, on nrf's digit feature network, built on
    first use) as ``fid_mnist``, ``kid_mnist`` and ``is_mnist``.

    ``source = "buffer"`` scores the newest ``n_samples`` of the objective's replay buffer
    (IGEBM, JEM, persistent CD); ``"sample"`` draws ``objective.sample(n_samples)``. The
    reference is the first ``n_samples`` validation images when the run has them, else the
    first ``n_samples`` training images (a fixed random subset, one the model trains on).
    ``value_range`` is the pixel range of the data (default: [0, 1] when no training pixel
    is negative, else [-1, 1]). Figures compare only within one run or at equal
    ``n_samples`` (FID falls as the sample count grows).
    """
    from nrf.metrics.mnist_features import load_feature_network
    from nrf.metrics.sample_quality import SampleQualityMeter

    check_positive_int("n_samples", n_samples)
    check_choice("source", source, ("buffer", "sample"))
    if data.kind != "images" or tuple(data.train.shape[1:]) != (1, 28, 28):
        raise ValueError(
            "the sample-quality evaluator scores MNIST-shaped images (n, 1, 28, 28); "
            f"got {data.kind} data of shape {tuple(data.train.shape)}"
        )
    pool = data.validation if data.validation is not None and data.validation.shape[0] > 0 else data.train
    if pool.shape[0] < n_samples:
        raise ValueError(
            f"sample-quality: n_samples = {n_samples} is more than the {pool.shape[0]} reference images"
        )
    default = (0.0 if float(data.train.min()) >= 0 else -1.0, 1.0)
    low, high = value_range if value_range is not None else default
    meter = SampleQualityMeter(
        load_feature_network(build=True), pool[:n_samples], value_range=(float(low), float(high)),
        kid_subset_size=min(1000, n_samples), kid_subsets=50, is_splits=5, seed=seed,
    )  # fmt: skip

    def evaluate(objective: Objective, step: int, run_dir: Path, gen: torch.Generator) -> dict[str, float]:
        if source == "buffer":
            buffer = getattr(objective, "buffer", None)
            if buffer is None or not callable(getattr(buffer, "contents", None)):
                raise TypeError(
                    f"sample-quality: source = 'buffer' needs an objective with a replay buffer, got "
                    f"{type(objective).__name__} (use source = 'sample')"
                )
            samples = buffer.contents(n_samples)
        else:
            samples = objective.sample(n_samples, gen)
        q = meter(samples.detach().cpu())
        return {"fid_mnist": q.fid, "kid_mnist": q.kid, "is_mnist": q.inception_score}

    return evaluate


@EVALUATORS.register("validation-energy", context=("data",))
def validation_energy(data: TrainingData) -> Evaluator:
    """Mean energy of the run's validation rows (``data.validation_fraction > 0``)."""
    if data.validation is None or data.validation.shape[0] == 0:
        raise ValueError("validation-energy needs validation rows (set data.validation_fraction > 0)")
    return validation_evaluator(data.validation)


def validation_evaluator(validation: torch.Tensor) -> Evaluator:
    """Mean energy of held-out data (``energy_validation``)."""

    def evaluate(objective: Objective, step: int, run_dir: Path, gen: torch.Generator) -> dict[str, float]:
        device = next(objective.parameters()).device
        means = []
        for chunk in validation.split(1024):
            means.append(member_energies(objective, chunk.to(device)).sum(1))
        return {"energy_validation": float(torch.stack(means).sum(0).mean() / validation.shape[0])}

    return evaluate


@EVALUATORS.register("knn-kl", context=("data",))
def knn_kl_evaluator(
    data: TrainingData,
    k: int = 1,
    n_samples: int = 1000,
    batch_size: int | None = None,
    ties: str = "drop",
    jitter: float | None = None,
) -> Evaluator:
    """Forward D(data || model) and reverse D(model || data) by the k-nearest-neighbour
    estimator (:func:`nrf.metrics.knn_kl_pair`; the BEAM paper's Eq. 17, with its log),
    as ``kl_forward`` and ``kl_reverse``.

    ``n_samples`` model samples are compared with held-out rows: the first ``n_samples``
    validation rows when the run has them (``data.validation_fraction > 0``), else the
    first 10 % of the training rows (at most ``n_samples``; the rows are shuffled when
    loaded, so this is a fixed random subset, but one the model trains on, which makes
    ``kl_forward`` read optimistic). ``batch_size`` averages the estimates over minibatches
    of that many rows, as the paper does. ``ties`` / ``jitter``: the rule for duplicate rows
    (see :mod:`nrf.metrics.knn_kl`); ``"drop"`` by default, so repeated rows (binary data,
    repeated samples) do not stop a run (it fails only when a row has fewer than k distinct
    neighbours, e.g. samples that all coincide); ``ties = "jitter", jitter = 1`` dequantizes
    binary data instead. With several models trained together, the metrics are the means over the
    models, with ``kl_forward_sd`` / ``kl_reverse_sd`` their spread.
    """
    check_positive_int("k", k)
    check_positive_int("n_samples", n_samples)
    check_choice("ties", ties, TIES)
    if batch_size is not None:
        check_positive_int("batch_size", batch_size)
    if (jitter is None) == (ties == "jitter"):
        raise ValueError(
            f"jitter must be given exactly when ties = 'jitter', got ties = {ties!r}, jitter = {jitter!r}"
        )
    if data.validation is not None and data.validation.shape[0] > 0:
        reference = data.validation[:n_samples]
    else:
        reference = data.train[: min(n_samples, round(0.1 * data.train.shape[0]))]
    available = min(n_samples, reference.shape[0])
    if batch_size is not None and batch_size > available:
        raise ValueError(
            f"knn-kl: batch_size = {batch_size} is more than the rows compared "
            f"({reference.shape[0]} held-out rows, n_samples = {n_samples})"
        )
    per_estimate = available if batch_size is None else batch_size
    if per_estimate < k + 1:
        raise ValueError(
            f"knn-kl: k = {k} needs at least k + 1 = {k + 1} rows per estimate, got {per_estimate} "
            f"({reference.shape[0]} held-out rows, n_samples = {n_samples}, batch_size = {batch_size})"
        )

    def evaluate(objective: Objective, step: int, run_dir: Path, gen: torch.Generator) -> dict[str, float]:
        models = members(objective)
        drawn = objective.sample(n_samples * models, gen).detach().to(gen.device)
        held_out = reference.to(gen.device)
        pairs = [
            knn_kl_pair(block, held_out, k, batch_size=batch_size, ties=ties, jitter=jitter, generator=gen)
            for block in drawn.chunk(models)
        ]
        forward = torch.tensor([p.forward for p in pairs], dtype=torch.float64)
        reverse = torch.tensor([p.reverse for p in pairs], dtype=torch.float64)
        out = {"kl_forward": float(forward.mean()), "kl_reverse": float(reverse.mean())}
        if models > 1:
            out["kl_forward_sd"] = float(forward.std())
            out["kl_reverse_sd"] = float(reverse.std())
        return out

    return evaluate


@EVALUATORS.register("transitions", context=("data",))
def transitions_evaluator(
    data: TrainingData | None = None, n_windows: int = 512, shown: int = 6
) -> Evaluator:
    """Transition data (rows: next states, labels: their contexts): the one-step prediction
    of ``n_windows`` fixed windows (validation windows when the run holds some out, else
    training windows), its mean squared error per coordinate ``one_step_mse`` and that of
    staying at the last state ``one_step_mse_still`` (the trivial predictor, for scale), and
    a figure: ``shown`` windows' context paths with the true and the predicted next state
    (the first two coordinates)."""
    if data is None or data.kind != "transitions":
        raise ValueError("the 'transitions' evaluator needs transition data (next states with contexts)")
    check_positive_int("n_windows", n_windows)
    held = data.validation is not None and data.validation_labels is not None
    rows = data.validation if held else data.train
    contexts = data.validation_labels if held else data.train_labels
    assert rows is not None
    assert contexts is not None
    pick = torch.randperm(rows.shape[0], generator=torch.Generator().manual_seed(0))[:n_windows]
    nxt, ctx = rows[pick], contexts[pick]
    d = nxt.shape[1]

    def evaluate(objective: Objective, step: int, run_dir: Path, gen: torch.Generator) -> dict[str, float]:
        predict = getattr(objective, "predict", None)
        if predict is None:
            raise TypeError(f"the 'transitions' evaluator needs an objective with predict(); got {objective}")
        device = next(objective.parameters()).device
        with torch.no_grad():
            pred = predict(ctx.to(device), gen).detach().cpu()
        last = ctx[:, -1, :d]
        mse = float(((pred - nxt) ** 2).mean())
        still = float(((last - nxt) ** 2).mean())
        from matplotlib.ticker import MaxNLocator

        k = min(shown, nxt.shape[0])
        cols = min(k, 3)
        fig, axes = plots.new_figure(cols, -(-k // cols), size=2.8)
        for ax in list(axes.flat)[k:]:
            ax.set_visible(False)
        for i, ax in zip(range(k), axes.flat, strict=False):
            path = ctx[i, :, :2].numpy()
            ax.plot(path[:, 0], path[:, 1] if d > 1 else np.zeros(len(path)), "o-", color="0.5", ms=3)
            ax.plot(*_xy(nxt[i]), "o", color="k", ms=5, label="true next")
            ax.plot(*_xy(pred[i]), "x", color="tab:red", ms=7, label="predicted")
            ax.set_title(f"window {i}", fontsize=8)
            ax.tick_params(labelsize=6)
            ax.xaxis.set_major_locator(MaxNLocator(3))
            ax.yaxis.set_major_locator(MaxNLocator(3))
        axes[0, 0].legend(fontsize=6)
        fig.suptitle(
            f"one-step predictions, step {step} (MSE {mse:.3g}; staying put {still:.3g})", fontsize=9
        )
        plots.save(fig, RunDir(run_dir).plot("transitions", step))
        return {"one_step_mse": mse, "one_step_mse_still": still}

    return evaluate


def _xy(state: torch.Tensor) -> tuple[float, float]:
    return float(state[0]), float(state[1]) if state.numel() > 1 else 0.0


def default_evaluators(data: TrainingData) -> list[Evaluator]:
    """What a run evaluates by default for its kind of data."""
    evaluators: list[Evaluator] = []
    if data.kind == "points" and data.train.shape[1] in (1, 2):
        evaluators.append(points_evaluator(data))
    elif data.kind == "images":
        evaluators.append(image_evaluator(data))
    elif data.kind == "transitions":
        evaluators.append(transitions_evaluator(data))
    if data.validation is not None and data.validation.shape[0] > 0:
        evaluators.append(validation_evaluator(data.validation))
    return evaluators


def build_evaluators(specs: list[Any], data: TrainingData) -> list[Evaluator]:
    """The evaluators of ``train.evaluators`` (names or tables), for ``data``."""
    return [EVALUATORS.build(spec, key=f"train.evaluators[{i}]", data=data) for i, spec in enumerate(specs)]
