"""Applications of trained random fields, one sub-package each: ``anomaly`` (the detector)."""

from nrf.applications.anomaly import (
    DETECTOR_PRESETS,
    DetectorPreset,
    DetectorSettings,
    NRFDetector,
    detector_preset,
    outlier_confidence,
    outlier_proba,
    score_threshold,
)

__all__ = [
    "DETECTOR_PRESETS",
    "DetectorPreset",
    "DetectorSettings",
    "NRFDetector",
    "detector_preset",
    "outlier_confidence",
    "outlier_proba",
    "score_threshold",
]
