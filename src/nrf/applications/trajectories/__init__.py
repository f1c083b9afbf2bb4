"""Trajectory models: rollouts of trained transition models and their scores."""

from nrf.applications.trajectories.rollout import (
    RolloutScores,
    diverged_share,
    finite_steps,
    rollout,
    rollouts_of,
    score_rollouts,
)

__all__ = ["RolloutScores", "diverged_share", "finite_steps", "rollout", "rollouts_of", "score_rollouts"]
