"""Anomaly detection with the energy of a random field: the scikit-learn / PyOD-style
detector, its presets, thresholds and the image preprocessing of the benchmarks."""

from nrf.applications.anomaly.detector import NRFDetector
from nrf.applications.anomaly.presets import DETECTOR_PRESETS, DetectorPreset, detector_preset
from nrf.applications.anomaly.settings import DetectorSettings, build_objective, resolve_settings
from nrf.applications.anomaly.thresholds import outlier_confidence, outlier_proba, score_threshold

__all__ = [
    "DETECTOR_PRESETS",
    "DetectorPreset",
    "DetectorSettings",
    "NRFDetector",
    "build_objective",
    "detector_preset",
    "outlier_confidence",
    "outlier_proba",
    "resolve_settings",
    "score_threshold",
]
