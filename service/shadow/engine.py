"""The shadow's own model session: one frame at a time, on the calling (shadow) thread.

Shadow inference never goes through production's batchers: it has its own ONNX Runtime
session per shadow version with one intra-op thread and no inter-op pool, so the whole
run happens on the low-priority shadow thread (see :mod:`service.shadow.serving`).
Decoding, letterboxing, post-processing, thresholds and the verdict are the served ones
(:func:`service.inspector.prepare`, :func:`service.batcher.run_batch`,
:func:`service.records.build_record`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from models.processing import PostprocessConfig
from service.batcher import run_batch
from service.config import Settings
from service.engine import ModelSession
from service.frames import Frame
from service.inspector import prepare
from service.records import DetectionRecord, build_record
from service.registry import ModelVersion


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
        session.warmup(1, 1)
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

    def inspect(self, frame: Frame) -> DetectionRecord:
        """The record this version gives ``frame`` (raises InvalidImage, PayloadTooLarge)."""
        t0 = time.perf_counter()
        tensor, info, size = prepare(
            frame.data, self.session.spec.imgsz, self.max_pixels, frame.pixels
        )
        run = run_batch(self.session, [tensor], [info], [size], self.post)
        return build_record(
            self.version,
            self.session.spec.class_names,
            run.dets[0],
            self.fail_classes,
            image=frame.image_name,
            frame_id=frame.frame_id,
            line=frame.line,
            camera=frame.camera,
            queue_s=0.0,
            inference_s=run.inference_s,
            total_s=time.perf_counter() - t0,
        )
