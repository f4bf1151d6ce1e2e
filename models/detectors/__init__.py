"""Detectors: backbone, neck, head, variant configs and the builder."""

from models.detectors.config import VARIANTS, DetectorConfig, get_config
from models.detectors.detector import Detector, build_detector, count_params

__all__ = ["VARIANTS", "Detector", "DetectorConfig", "build_detector", "count_params", "get_config"]
