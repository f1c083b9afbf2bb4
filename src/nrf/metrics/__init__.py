"""Evaluation metrics."""

from nrf.metrics.ais import AISResult, ais_log_partition, rbm_log_likelihood
from nrf.metrics.knn_kl import KnnKL, knn_kl_divergence, knn_kl_pair
from nrf.metrics.modes import ModeMetrics, mode_metrics, nearest_mode
from nrf.metrics.sample_quality import (
    FeatureNetwork,
    SampleQuality,
    SampleQualityMeter,
    reference_quality,
    sample_quality,
)

__all__ = [
    "AISResult",
    "FeatureNetwork",
    "KnnKL",
    "ModeMetrics",
    "SampleQuality",
    "SampleQualityMeter",
    "ais_log_partition",
    "knn_kl_divergence",
    "knn_kl_pair",
    "mode_metrics",
    "nearest_mode",
    "rbm_log_likelihood",
    "reference_quality",
    "sample_quality",
]
