"""The shadow's own model session: small batches, on the calling (shadow) thread.

Shadow inference never goes through production's batchers: it has its own ONNX Runtime
session per shadow version with one intra-op thread and no inter-op pool, so the whole
run happens on the low-priority shadow thread (see :mod:`service.shadow.serving`).
Decoding, letterboxing, post-processing, thresholds and the verdict are the served ones
(:func:`service.inspector.prepare`, :func:`service.batcher.run_batch`,
:func:`service.records.build_record`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.processing import LetterboxInfo, PostprocessConfig
from service.batcher import run_batch
from service.config import Settings
from service.engine import ModelSession
from service.errors import LineInspectError
from service.frames import Frame
from service.inspector import prepare
from service.records import DetectionRecord, build_record
from service.registry import ModelVersion

#: Most frames run as one shadow batch: what queued while the (low-priority) shadow
#: thread was busy or starved runs together, at batch efficiency.
SHADOW_BATCH = 8


@dataclass
class ShadowModel:
    """A loaded shadow version with the served post-processing of its card."""

    version: ModelVersion
    session: ModelSession
    post: PostprocessConfig
    fail_classes: tuple[str, ...] | None
    max_pixels: int

    @classmethod
    def load(cls, version: ModelVersion, settings: Settings) -> ShadowModel:
        """Load and warm ``version`` (blocking; call it on the shadow thread)."""
        s = settings
        session = ModelSession(version, s.providers, 1, 1, False, False)
        session.warmup(1, SHADOW_BATCH)
        post = PostprocessConfig.for_classes(
            session.spec.class_names,
            s.score_threshold,
            s.class_thresholds,
            s.iou_threshold,
            s.max_detections,
            card=version.card,
        )
        fail = None if s.fail_classes is None else tuple(s.fail_classes)
        return cls(version, session, post, fail, s.max_pixels)

    def inspect(self, frames: Sequence[Frame]) -> list[DetectionRecord | None]:
        """The records this version gives ``frames``, run as one batch (None for a frame
        that does not decode)."""
        t0 = time.perf_counter()
        imgsz = self.session.spec.imgsz
        inputs: list[tuple[np.ndarray, LetterboxInfo, tuple[int, int]] | None] = []
        for f in frames:
            try:
                inputs.append(prepare(f.data, imgsz, self.max_pixels, f.pixels))
            except LineInspectError:
                inputs.append(None)
        ok = [x for x in inputs if x is not None]
        if not ok:
            return [None] * len(frames)
        run = run_batch(
            self.session, [x[0] for x in ok], [x[1] for x in ok], [x[2] for x in ok], self.post
        )
        dets = iter(run.dets)
        total = time.perf_counter() - t0
        return [
            None
            if x is None
            else build_record(
                self.version,
                self.session.spec.class_names,
                next(dets),
                self.fail_classes,
                image=f.image_name,
                frame_id=f.frame_id,
                line=f.line,
                camera=f.camera,
                queue_s=0.0,
                inference_s=run.inference_s,
                total_s=total,
            )
            for f, x in zip(frames, inputs, strict=True)
        ]
