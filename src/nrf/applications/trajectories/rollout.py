"""Multi-step rollouts of a trained transition model and their scores.

A model here is anything with ``predict(context, generator) -> next states`` (the
``transition-ebm`` and ``transition-regression`` objectives). A rollout feeds the model
its own predictions: from the true states t0 .. t0 + c - 1 it predicts state t0 + c, then
predicts t0 + c + 1 from the window that now ends with that prediction, and so on. For
action-conditional data the true actions of the trajectory are given at every step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from nrf._checks import check_choice, check_positive_int
from nrf.data.trajectories import TrajectorySet
from nrf.metrics.trajectories import frechet_per_step, rollout_mse


def rollout(
    model: Any,
    context: torch.Tensor,
    steps: int,
    actions: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    *,
    nonfinite: str = "raise",
) -> torch.Tensor:
    """``steps`` predicted states ``(n, steps, d)`` after ``context`` ``(n, c, d + a)``;
    ``actions`` ``(n, steps - 1, a)`` are the actions at the predicted states (the one at
    step k goes with prediction k into the next window), required when ``a > 0``.

    A prediction that leaves the finite numbers raises ``FloatingPointError``
    (``nonfinite = "raise"``) or, with ``"nan"``, makes that rollout NaN from there on (a
    diverged rollout is a result to score, see :func:`score_rollouts`)."""
    steps = check_positive_int("steps", steps)
    nonfinite = check_choice("nonfinite", nonfinite, ("raise", "nan"))
    d = int(model.energy.state_dim)
    a = context.shape[2] - d
    if a and (actions is None or actions.shape[:2] != (context.shape[0], steps - 1)):
        got = None if actions is None else tuple(actions.shape)
        raise ValueError(f"actions: expected shape ({context.shape[0]}, {steps - 1}, {a}), got {got}")
    out = []
    window = context
    dead = torch.zeros(context.shape[0], dtype=torch.bool, device=context.device)
    for k in range(steps):
        nxt = model.predict(window, generator)
        bad = dead | ~torch.isfinite(nxt).all(dim=1)
        if bad.any():
            if nonfinite == "raise":
                raise FloatingPointError(f"the rollout left the finite numbers at step {k + 1}")
            dead = bad
            nxt = torch.where(dead[:, None], torch.full_like(nxt, float("nan")), nxt)
        out.append(nxt)
        if k + 1 < steps:
            step = nxt if actions is None else torch.cat([nxt, actions[:, k].to(nxt)], dim=1)
            window = torch.cat([window[:, 1:], step[:, None]], dim=1)
            if dead.any():  # dead rows are NaN in the output; zeros keep their arithmetic finite
                window = window.masked_fill(dead[:, None, None], 0.0)
    return torch.stack(out, dim=1)


def rollouts_of(
    model: Any,
    states: np.ndarray,
    actions: np.ndarray | None,
    starts: list[int],
    horizon: int,
    *,
    context: int = 3,
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
    nonfinite: str = "raise",
) -> tuple[np.ndarray, np.ndarray]:
    """(predicted, true) ``(n * len(starts), horizon, d)``: a rollout of ``horizon`` steps
    from every start t0 in ``starts`` (the context is states t0 .. t0 + context - 1) of every
    trajectory in ``states`` ``(n, T, d)``."""
    steps = states.shape[1]
    if any(t0 < 0 or t0 + context + horizon > steps for t0 in starts):
        raise ValueError(f"starts: each t0 needs t0 + {context} + {horizon} <= {steps} steps, got {starts}")
    seq = states if actions is None else np.concatenate([states, actions], axis=2)
    ctx = np.concatenate([seq[:, t0 : t0 + context] for t0 in starts])
    true = np.concatenate([states[:, t0 + context : t0 + context + horizon] for t0 in starts])
    acts = None
    if actions is not None:
        acts = torch.from_numpy(
            np.concatenate([actions[:, t0 + context : t0 + context + horizon - 1] for t0 in starts])
        ).to(device)
    pred = rollout(model, torch.from_numpy(ctx).to(device), horizon, acts, generator, nonfinite=nonfinite)
    return pred.cpu().numpy(), true


@dataclass(frozen=True)
class RolloutScores:
    """``mse``: per-horizon MSE (1..``horizon``) over rollouts started every
    ``start_every`` steps; ``frechet``: per-step Fréchet distance of the rollouts from each
    trajectory's first window to its end; ``frechet_mean``: its mean over steps;
    ``diverged``: the share of those rollouts that left the finite numbers. A step at which
    any rollout has left them scores inf (JSON: null), and so does the mean."""

    mse: np.ndarray
    frechet: np.ndarray
    frechet_mean: float
    diverged: float = 0.0

    def to_json(self) -> dict[str, Any]:
        def finite(values: np.ndarray) -> list[float | None]:
            return [float(v) if np.isfinite(v) else None for v in values]

        mean = self.frechet_mean if np.isfinite(self.frechet_mean) else None
        return {"mse": finite(self.mse), "frechet": finite(self.frechet), "frechet_mean": mean,
                "diverged": self.diverged}  # fmt: skip


def score_rollouts(
    model: Any,
    data: TrajectorySet,
    *,
    horizon: int = 10,
    start_every: int = 50,
    frechet_steps: int | None = None,
    context: int = 3,
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
) -> RolloutScores:
    """Both scores of ``model`` on the test trajectories of ``data``: the MSE over
    ``horizon`` steps from starts 0, ``start_every``, ... (001_… Fig. 8), and the Fréchet
    distance per step of one rollout per trajectory from its first window over
    ``frechet_steps`` steps (default: to the end; 002_… Fig. 13)."""
    test, acts = data.test, data.test_actions
    steps = test.shape[1]
    starts = list(range(0, steps - context - horizon + 1, check_positive_int("start_every", start_every)))
    pred, true = rollouts_of(model, test, acts, starts, horizon, context=context, generator=generator,
                             device=device, nonfinite="nan")  # fmt: skip
    mse = finite_steps(rollout_mse, pred, true)
    length = frechet_steps or steps - context
    pred, true = rollouts_of(model, test, acts, [0], length, context=context, generator=generator,
                             device=device, nonfinite="nan")  # fmt: skip
    fd = finite_steps(frechet_per_step, pred, true)
    return RolloutScores(mse, fd, float(fd.mean()), diverged_share(pred))


def finite_steps(metric: Any, pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """``metric`` (a per-step score of rollouts ``(n, steps, d)``, e.g.
    :func:`nrf.metrics.trajectories.rollout_mse`) over the steps at which every rollout is
    finite; inf from the first step at which one is not."""
    finite = np.isfinite(pred).all(axis=(0, 2))
    live = int(finite.argmin()) if not finite.all() else pred.shape[1]
    out = np.full(pred.shape[1], np.inf)
    if live:
        out[:live] = metric(pred[:, :live], true[:, :live])
    return out


def diverged_share(pred: np.ndarray) -> float:
    """The share of rollouts ``(n, steps, d)`` that left the finite numbers."""
    return float((~np.isfinite(pred).all(axis=(1, 2))).mean())
