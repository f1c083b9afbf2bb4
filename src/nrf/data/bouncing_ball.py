"""The bouncing-ball dynamics of IGEBM's time-series study (001_… section 5.1): one ball in
the unit box with wall collisions, drag and friction, simulated for many trajectories at
once (numpy, vectorized over trajectories).

Per step of length ``dt``, with position p and velocity v (2-D), speed s = |v|:

    s' = max(s - dt (drag s^2 + friction), 0)            quadratic drag, Coulomb friction
    v' = v s' / s
    p' = p + dt v'
    walls: where p'_j < r or p'_j > 1 - r, p'_j is reflected into [r, 1 - r] and
           v'_j <- -restitution v'_j                         (r: the ball's radius)

Starts: p ~ U[r, 1 - r]^2, direction uniform, speed ~ U(speed_range). The trajectories are
the positions p_0 .. p_{T-1}; a model sees the past 3 positions and predicts the next.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nrf._checks import check_positive, check_positive_int


@dataclass(frozen=True)
class BallDynamics:
    """The simulator's constants (see the module docstring)."""

    dt: float = 0.01
    drag: float = 0.1
    friction: float = 0.05
    restitution: float = 0.9
    radius: float = 0.05
    speed_range: tuple[float, float] = (0.5, 1.5)

    def __post_init__(self) -> None:
        check_positive("dt", self.dt)
        if self.drag < 0 or self.friction < 0:
            raise ValueError(f"drag and friction must be >= 0, got {self.drag!r} and {self.friction!r}")
        if not 0 < self.restitution <= 1:
            raise ValueError(f"restitution must be in (0, 1], got {self.restitution!r}")
        if not 0 <= self.radius < 0.5:
            raise ValueError(f"radius must be in [0, 0.5), got {self.radius!r}")
        low, high = self.speed_range
        if not 0 <= low <= high:
            raise ValueError(
                f"speed_range must be (low, high) with 0 <= low <= high, got {self.speed_range!r}"
            )


def reflect(p: np.ndarray, v: np.ndarray, low: float, high: float, restitution: float) -> None:
    """Reflect the coordinates of ``p`` outside ``[low, high]`` back inside and reverse (and
    damp) the matching velocity components, in place. Repeats until every coordinate is
    inside (a fast ball may cross the box more than once in a step)."""
    for _ in range(64):
        below, above = p < low, p > high
        if not (below.any() or above.any()):
            return
        p[below] = 2 * low - p[below]
        p[above] = 2 * high - p[above]
        v[below | above] *= -restitution
    np.clip(p, low, high, out=p)  # a step longer than 64 box widths: pin to the wall


def simulate_bouncing_ball(
    n_trajectories: int,
    n_steps: int,
    *,
    seed: int = 0,
    dynamics: BallDynamics | None = None,
) -> np.ndarray:
    """``n_trajectories`` trajectories of ``n_steps`` ball positions, ``(n, n_steps, 2)``
    float32, from ``numpy.random.default_rng(seed)`` (the same seed gives the same data).

    >>> simulate_bouncing_ball(3, 50, seed=1).shape
    (3, 50, 2)
    """
    n = check_positive_int("n_trajectories", n_trajectories)
    steps = check_positive_int("n_steps", n_steps)
    dyn = BallDynamics() if dynamics is None else dynamics
    rng = np.random.default_rng(seed)
    low, high = dyn.radius, 1.0 - dyn.radius
    p = rng.uniform(low, high, size=(n, 2))
    angle = rng.uniform(0.0, 2 * np.pi, size=n)
    speed = rng.uniform(*dyn.speed_range, size=n)
    v = np.stack([np.cos(angle), np.sin(angle)], axis=1) * speed[:, None]
    out = np.empty((n, steps, 2), dtype=np.float32)
    out[:, 0] = p
    for t in range(1, steps):
        s = np.linalg.norm(v, axis=1, keepdims=True)
        s_new = np.maximum(s - dyn.dt * (dyn.drag * s * s + dyn.friction), 0.0)
        v = np.where(s > 0, v * (s_new / np.where(s > 0, s, 1.0)), 0.0)
        p = p + dyn.dt * v
        reflect(p, v, low, high, dyn.restitution)
        out[:, t] = p
    return out
