"""Periodic evaluation hooks: metrics and figures written into the run directory.

An evaluator is ``evaluator(objective, step, run_dir, generator) -> dict[str, float]``;
it draws its own random numbers from ``generator`` (seeded from the step), so evaluating
never changes the training run's random stream.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from nrf import plots
from nrf.metrics import mode_metrics
from nrf.objectives import Objective
from nrf.training.data import TrainingData

Evaluator = Callable[[Objective, int, Path, torch.Generator], dict[str, float]]


def _plot_name(run_dir: Path, kind: str, step: int) -> Path:
    return run_dir / "plots" / f"{kind}-step{step:08d}.png"


def points_evaluator(data: TrainingData, n_samples: int = 10_000) -> Evaluator:
    """2-D data: density heat map of exp(-E) with the data (and mode centres), and model
    samples; 1-D data: histograms of samples and data. With known mode centres, also the
    mode metrics of Inclusive-NRF Table I on ``n_samples`` samples (batches of 100); for
    objectives with an auxiliary generator, for its samples too (``generation_*``)."""
    x = data.train
    lim = float(x.abs().max()) * 1.15

    def evaluate(objective: Objective, step: int, run_dir: Path, gen: torch.Generator) -> dict[str, float]:
        samples = objective.sample(n_samples, gen).detach().cpu()
        metrics: dict[str, float] = {}
        if data.centres is not None and data.std is not None:
            m = mode_metrics(samples, data.centres, data.std)
            metrics.update(covered_modes=m.covered_modes, realistic_ratio=m.realistic_ratio)
            generation = getattr(objective, "sample_generation", None)
            if generation is not None:
                g = mode_metrics(generation(n_samples, gen).detach().cpu(), data.centres, data.std)
                metrics["generation_covered_modes"] = g.covered_modes
                metrics["generation_realistic_ratio"] = g.realistic_ratio
        samples = samples[:1000]
        fig, axes = plots.new_figure(2)
        if x.shape[1] == 2:
            plots.energy_heatmap(axes[0, 0], objective.energy, lim, data.centres, f"exp(-E), step {step}")
            plots.scatter_2d(axes[0, 1], samples, data.centres, f"samples, step {step}", lim=lim)
        else:
            axes[0, 0].hist(x[:, 0].numpy(), bins=60, color="tab:gray")
            axes[0, 0].set_title("data", fontsize=9)
            axes[0, 1].hist(samples[:, 0].numpy(), bins=60, color="tab:blue")
            axes[0, 1].set_title(f"samples, step {step}", fontsize=9)
        plots.save(fig, _plot_name(run_dir, "density", step))
        return metrics

    return evaluate


def image_evaluator(n_samples: int = 64) -> Evaluator:
    """Image data: a grid of model samples."""

    def evaluate(objective: Objective, step: int, run_dir: Path, gen: torch.Generator) -> dict[str, float]:
        samples = objective.sample(n_samples, gen).detach().cpu()
        fig, axes = plots.new_figure(1, size=6)
        plots.image_grid(axes[0, 0], samples, ncol=8, title=f"samples, step {step}")
        plots.save(fig, _plot_name(run_dir, "samples", step))
        return {}

    return evaluate


def validation_evaluator(validation: torch.Tensor) -> Evaluator:
    """Mean energy of held-out data (``energy_validation``)."""

    def evaluate(objective: Objective, step: int, run_dir: Path, gen: torch.Generator) -> dict[str, float]:
        device = next(objective.parameters()).device
        energies = [objective.score(chunk.to(device)) for chunk in validation.split(1024)]
        return {"energy_validation": float(torch.cat(energies).mean())}

    return evaluate


def default_evaluators(data: TrainingData) -> list[Evaluator]:
    """What a run evaluates by default for its kind of data."""
    evaluators: list[Evaluator] = []
    if data.kind == "points" and data.train.shape[1] in (1, 2):
        evaluators.append(points_evaluator(data))
    elif data.kind == "images":
        evaluators.append(image_evaluator())
    if data.validation is not None and data.validation.shape[0] > 0:
        evaluators.append(validation_evaluator(data.validation))
    return evaluators
