"""The per-class score thresholds a model version is served with, by class name.

Serving builds them with :meth:`models.processing.PostprocessConfig.for_classes` from the
settings and the model card; the loop's observers (capture's near-threshold sampler, the
audit trail) read the same figures here, cached per model version.
"""

from __future__ import annotations

import numpy as np

from models.processing import PostprocessConfig
from service.config import Settings
from service.registry import Registry


class ServedThresholds:
    """``(name, version)`` → (``{class: threshold}``, class names), computed once each."""

    def __init__(self, settings: Settings, registry: Registry) -> None:
        self.settings, self.registry = settings, registry
        self._cache: dict[tuple[str, int], tuple[dict[str, float], tuple[str, ...]]] = {}

    def of(self, name: str, version: int) -> tuple[dict[str, float], tuple[str, ...]]:
        """The thresholds and class names of ``name:version`` (reads its card once)."""
        key = (name, version)
        got = self._cache.get(key)
        if got is None:
            card = self.registry.get(name, version).card
            names = [str(n) for n in card["class_names"]]
            s = self.settings
            post = PostprocessConfig.for_classes(
                names,
                s.score_threshold,
                s.class_thresholds,
                s.iou_threshold,
                s.max_detections,
                card=card,
            )
            thr = [round(float(t), 6) for t in np.asarray(post.conf_thr).reshape(-1)]
            got = (dict(zip(names, thr, strict=True)), tuple(names))
            self._cache[key] = got
        return got
