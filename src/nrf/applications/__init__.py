"""Applications of trained random fields: the anomaly detector and its presets."""

from nrf.applications.detector import NRFDetector
from nrf.applications.fitting import FitDiverged, ParameterAverage, fit_epochs
from nrf.applications.presets import DETECTOR_PRESETS, DetectorPreset, detector_preset
from nrf.applications.thresholds import outlier_confidence, outlier_proba, score_threshold

__all__ = [
    "DETECTOR_PRESETS",
    "DetectorPreset",
    "FitDiverged",
    "NRFDetector",
    "ParameterAverage",
    "detector_preset",
    "fit_epochs",
    "outlier_confidence",
    "outlier_proba",
    "score_threshold",
]
