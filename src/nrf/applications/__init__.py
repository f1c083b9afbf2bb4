"""Applications of trained random fields, one sub-package each: ``anomaly`` (the detector)."""

from nrf.applications import anomaly
from nrf.applications.anomaly import *  # noqa: F403

__all__ = anomaly.__all__
