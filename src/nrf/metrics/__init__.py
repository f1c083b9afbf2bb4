"""Evaluation metrics."""

from nrf.metrics.ais import AISResult, ais_log_partition, rbm_log_likelihood
from nrf.metrics.knn_kl import KnnKL, knn_kl_divergence, knn_kl_pair
from nrf.metrics.modes import ModeMetrics, mode_metrics, nearest_mode

__all__ = [
    "AISResult",
    "KnnKL",
    "ModeMetrics",
    "ais_log_partition",
    "knn_kl_divergence",
    "knn_kl_pair",
    "mode_metrics",
    "nearest_mode",
    "rbm_log_likelihood",
]
