"""Evaluation metrics."""

from nrf.metrics.modes import ModeMetrics, mode_metrics, nearest_mode

__all__ = ["ModeMetrics", "mode_metrics", "nearest_mode"]
