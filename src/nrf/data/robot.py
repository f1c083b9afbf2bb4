"""Trajectories of a simulated robot arm for IGEBM's multi-step rollout study (002_… section
5), which used a policy-driven MuJoCo hand manipulating a cube (not available). Here the
robot is gymnasium's MuJoCo ``Pusher-v5``: a 7-joint arm on a table with a free object it
can push (``pip install "gymnasium[mujoco]"``, the ``robot`` extra).

State: the 7 arm joint angles and the object's (x, y) position, ``qpos[:9]`` (the paper's
state: the hand's joint positions and the cube's pose). Actions: 7 joint torques in
[-2, 2], from a scripted controller standing in for the paper's trained policy: a PD
controller in joint space towards a target posture q* drawn uniformly within the joint
limits and redrawn every ``hold`` steps,

    a_t = clip(kp (q* - q_t) - kd qdot_t, -2, 2),

with every 4th action (t = 3, 7, 11, ...) replaced by a uniform random action, as 002_…
does for diversity. Each trajectory starts from the environment's own randomized reset
(object and goal positions); one environment step is 5 MuJoCo steps (dt = 0.05 s).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nrf._checks import check_positive, check_positive_int

STATE_DIM = 9
ACTION_DIM = 7
ENV_ID = "Pusher-v5"


@dataclass(frozen=True)
class RobotTrajectories:
    """``states`` ``(n, T, 9)`` and ``actions`` ``(n, T, 7)`` (action t moves state t to
    t + 1; the last one is never applied), float32."""

    states: np.ndarray
    actions: np.ndarray


def _make_env() -> Any:
    try:
        import gymnasium
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            'the robot trajectories need gymnasium with MuJoCo: pip install "gymnasium[mujoco]" '
            "(or nrf's robot extra)"
        ) from exc
    return gymnasium.make(ENV_ID).unwrapped  # no time limit: trajectories set their own length


def simulate_pusher(
    n_trajectories: int,
    n_steps: int,
    *,
    seed: int = 0,
    hold: int = 25,
    kp: float = 2.0,
    kd: float = 0.2,
    random_every: int = 4,
) -> RobotTrajectories:
    """``n_trajectories`` trajectories of ``n_steps`` states of the Pusher arm under the
    scripted controller of the module docstring (every ``random_every``-th action random),
    seeded by ``seed`` (environment resets and the controller's draws).

    >>> data = simulate_pusher(2, 10, seed=0)  # doctest: +SKIP
    >>> data.states.shape, data.actions.shape  # doctest: +SKIP
    ((2, 10, 9), (2, 10, 7))
    """
    n = check_positive_int("n_trajectories", n_trajectories)
    steps = check_positive_int("n_steps", n_steps)
    hold = check_positive_int("hold", hold)
    every = check_positive_int("random_every", random_every)
    check_positive("kp", kp)
    check_positive("kd", kd, allow_zero=True)
    env = _make_env()
    rng = np.random.default_rng(seed)
    low_q, high_q = (np.asarray(b) for b in zip(*env.model.jnt_range[:ACTION_DIM], strict=True))
    low_a, high_a = -2.0, 2.0
    states = np.empty((n, steps, STATE_DIM), dtype=np.float32)
    actions = np.empty((n, steps, ACTION_DIM), dtype=np.float32)
    env.reset(seed=int(rng.integers(2**31)))
    for i in range(n):
        if i:
            env.reset()
        data = env.data
        for t in range(steps):
            q, qdot = data.qpos[:ACTION_DIM], data.qvel[:ACTION_DIM]
            states[i, t] = data.qpos[:STATE_DIM]
            if t % hold == 0:
                target = rng.uniform(low_q, high_q)
            if t % every == every - 1:
                a = rng.uniform(low_a, high_a, size=ACTION_DIM)
            else:
                a = np.clip(kp * (target - q) - kd * qdot, low_a, high_a)
            actions[i, t] = a
            if t + 1 < steps:
                env.step(a.astype(np.float32))
    env.close()
    return RobotTrajectories(states, actions)
