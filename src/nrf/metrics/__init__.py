"""Evaluation metrics."""

from nrf.metrics.knn_kl import KnnKL, knn_kl_divergence, knn_kl_pair
from nrf.metrics.modes import ModeMetrics, mode_metrics, nearest_mode

__all__ = ["KnnKL", "ModeMetrics", "knn_kl_divergence", "knn_kl_pair", "mode_metrics", "nearest_mode"]
