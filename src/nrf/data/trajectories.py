"""Trajectory data sets for transition models E(x_{t+1} | x_{t-c+1..t}) and their windows.

A :class:`TrajectorySet` holds training and test trajectories ``(n, T, d)`` (and, for
action-conditional data, the actions ``(n, T, a)``, action t moving state t to t + 1).
:func:`transition_windows` cuts them into (context, next state) pairs: the context of the
transition t -> t + 1 is the states t - c + 1 .. t, each step with its action appended when
the set has actions, ``(m, c, d + a)``; the next state is ``(m, d)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nrf._checks import check_choice, check_positive_int
from nrf.data.bouncing_ball import simulate_bouncing_ball

CONTEXT = 3  # the past 3 positions (001_… section 5.1)
TRAJECTORY_SETS = ("bouncing-ball", "pusher", "pusher-conditional")


@dataclass(frozen=True)
class TrajectorySet:
    """Training and test trajectories of one data set (actions ``None`` when unconditional)."""

    name: str
    train: np.ndarray
    test: np.ndarray
    train_actions: np.ndarray | None = None
    test_actions: np.ndarray | None = None

    @property
    def state_dim(self) -> int:
        return int(self.train.shape[2])

    @property
    def action_dim(self) -> int:
        return 0 if self.train_actions is None else int(self.train_actions.shape[2])


def transition_windows(
    states: np.ndarray, actions: np.ndarray | None = None, context: int = CONTEXT
) -> tuple[np.ndarray, np.ndarray]:
    """(contexts ``(m, context, d + a)``, next states ``(m, d)``) of every transition of
    every trajectory in ``states`` ``(n, T, d)``, ``m = n (T - context)``, float32.

    >>> ctx, nxt = transition_windows(np.arange(12.0).reshape(1, 6, 2))
    >>> ctx.shape, nxt.shape, nxt[0].tolist()
    ((3, 3, 2), (3, 2), [6.0, 7.0])
    """
    c = check_positive_int("context", context)
    if states.ndim != 3:
        raise ValueError(f"states: expected (trajectories, steps, dims), got shape {states.shape}")
    n, steps, _ = states.shape
    if steps <= c:
        raise ValueError(f"states: trajectories of {steps} steps have no transition after a context of {c}")
    seq = states
    if actions is not None:
        if actions.shape[:2] != states.shape[:2]:
            raise ValueError(f"actions: expected one per state, shape ({n}, {steps}, a), got {actions.shape}")
        seq = np.concatenate([states, actions], axis=2)
    # window w of trajectory i covers steps w .. w + c - 1; its next state is step w + c
    idx = np.arange(steps - c)[:, None] + np.arange(c)[None, :]
    contexts = seq[:, idx].reshape(-1, c, seq.shape[2])
    nxt = states[:, c:].reshape(-1, states.shape[2])
    return contexts.astype(np.float32), nxt.astype(np.float32)


def load_trajectories(
    name: str,
    *,
    n_train: int | None = None,
    n_test: int | None = None,
    steps: int | None = None,
    seed: int = 0,
) -> TrajectorySet:
    """A simulated trajectory set by ``name``:

    * ``"bouncing-ball"`` (001_… section 5.1): 4,500 training and 500 test trajectories of
      500 steps by default (:mod:`nrf.data.bouncing_ball`);
    * ``"pusher"`` / ``"pusher-conditional"`` (the stand-in for 002_…'s robot hand,
      :mod:`nrf.data.robot`): 2,000 training and 200 test trajectories of 100 steps by
      default, without / with the actions.

    Training and test trajectories come from different streams of ``seed``.
    """
    check_choice("name", name, TRAJECTORY_SETS)
    if name == "bouncing-ball":
        n_tr, n_te, t = n_train or 4500, n_test or 500, steps or 500
        train = simulate_bouncing_ball(n_tr, t, seed=2 * seed)
        test = simulate_bouncing_ball(n_te, t, seed=2 * seed + 1)
        return TrajectorySet(name, train, test)
    from nrf.data.robot import simulate_pusher

    n_tr, n_te, t = n_train or 2000, n_test or 200, steps or 100
    tr = simulate_pusher(n_tr, t, seed=2 * seed)
    te = simulate_pusher(n_te, t, seed=2 * seed + 1)
    if name == "pusher":
        return TrajectorySet(name, tr.states, te.states)
    return TrajectorySet(name, tr.states, te.states, tr.actions, te.actions)
