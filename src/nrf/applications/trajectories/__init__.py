"""Trajectory models: rollouts of trained transition models and their scores."""

from nrf.applications.trajectories.rollout import RolloutScores, rollout, rollouts_of, score_rollouts

__all__ = ["RolloutScores", "rollout", "rollouts_of", "score_rollouts"]
