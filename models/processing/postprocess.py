"""Raw output → per-image detections in original pixels (thresholds, NMS, inverse letterbox)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from models.processing.boxes import batched_nms
from models.processing.decode import _sigmoid, decode_boxes
from models.processing.letterbox import LetterboxInfo, unletterbox_boxes
from models.processing.spec import ModelSpec

log = logging.getLogger(__name__)

#: Highest-scoring candidates kept for NMS per image (the rest could hardly survive it).
MAX_CANDIDATES = 2000
#: NMS IoU threshold of the served post-processing (``Settings.iou_threshold``'s default)
#: and of every offline evaluation, so the mAP we report is the mAP we serve (on NEU-DET
#: 0.5 scores ~1.5 mAP@.5 higher than 0.6 for every shipped model).
DEFAULT_IOU_THRESHOLD = 0.5


@dataclass(frozen=True)
class Detections:
    """Detections of one image: xyxy boxes in original pixels, scores, class ids."""

    boxes: np.ndarray  # float32 [K,4]
    scores: np.ndarray  # float32 [K]
    class_ids: np.ndarray  # int64 [K]

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @classmethod
    def empty(cls) -> Detections:
        """No detections."""
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))


def _class_thresholds(
    conf_thr: float | Sequence[float] | np.ndarray, num_classes: int
) -> np.ndarray:
    thr = np.asarray(conf_thr, dtype=np.float32)
    if thr.ndim == 0:
        return np.full(num_classes, float(thr), dtype=np.float32)
    if thr.shape != (num_classes,):
        raise ValueError(f"need one score threshold per class ({num_classes}), got {thr.shape}")
    return thr


def postprocess(
    raw: np.ndarray,
    spec: ModelSpec,
    infos: Sequence[LetterboxInfo],
    orig_sizes: Sequence[tuple[int, int]],
    conf_thr: float | Sequence[float] | np.ndarray = 0.25,
    iou_thr: float = DEFAULT_IOU_THRESHOLD,
    max_det: int = 100,
) -> list[Detections]:
    """Turn raw output ``[N,A,5+C]`` into one :class:`Detections` per image.

    Each row keeps its best class; rows under that class's score threshold are dropped
    before any box is decoded (cheap), then class-aware NMS and the inverse letterbox.
    ``orig_sizes`` holds ``(width, height)`` of each original image.
    """
    if raw.ndim != 3 or raw.shape[1:] != (spec.num_predictions, 5 + spec.num_classes):
        raise ValueError(
            f"raw output shape {raw.shape} does not match spec "
            f"[N,{spec.num_predictions},{5 + spec.num_classes}]"
        )
    thr = _class_thresholds(conf_thr, spec.num_classes)
    min_thr = float(thr.min())
    results: list[Detections] = []
    for img_raw, info, (width, height) in zip(raw, infos, orig_sizes, strict=True):
        obj = _sigmoid(img_raw[:, 4])
        # Upper bound on any class score: discard most rows before the full softmax work.
        rows = np.nonzero(obj > min_thr)[0]
        cls_prob = _sigmoid(img_raw[rows, 5:]) * obj[rows, None]
        cls_id = cls_prob.argmax(axis=1)
        score = cls_prob[np.arange(rows.size), cls_id]
        keep = score > thr[cls_id]
        rows, cls_id, score = rows[keep], cls_id[keep], score[keep]
        if rows.size > MAX_CANDIDATES:  # bound NMS work on pathological outputs
            top = np.argpartition(-score, MAX_CANDIDATES)[:MAX_CANDIDATES]
            rows, cls_id, score = rows[top], cls_id[top], score[top]
        if rows.size == 0:
            results.append(Detections.empty())
            continue
        boxes = decode_boxes(img_raw[rows], spec, rows)
        kept = batched_nms(boxes, score, cls_id, iou_thr, max_det)
        boxes = unletterbox_boxes(boxes[kept], info, width, height)
        results.append(
            Detections(
                boxes=boxes,
                scores=score[kept].astype(np.float32),
                class_ids=cls_id[kept].astype(np.int64),
            )
        )
    return results


FALLBACK_SCORE_THRESHOLD = 0.25  # for models whose card recommends none


@dataclass(frozen=True)
class PostprocessConfig:
    """Thresholds applied to every batch of this model."""

    conf_thr: float | np.ndarray
    iou_thr: float
    max_det: int

    @classmethod
    def for_classes(
        cls,
        class_names: Sequence[str],
        default_thr: float | None,
        class_thr: dict[str, float],
        iou_thr: float,
        max_det: int,
        card: Mapping[str, object] | None = None,
    ) -> PostprocessConfig:
        """Per-class score thresholds: ``class_thr`` where given, else ``default_thr``; an
        unset ``default_thr`` falls back to the model card's ``class_thresholds`` (written
        by ``lineinspect calibrate``), then its recommended threshold, then to
        :data:`FALLBACK_SCORE_THRESHOLD`."""
        if default_thr is None:
            rec = (card or {}).get("recommended_score_threshold")
            default_thr = float(rec) if isinstance(rec, int | float) else FALLBACK_SCORE_THRESHOLD
            card_thr = (card or {}).get("class_thresholds")
            if isinstance(card_thr, Mapping):
                class_thr = {**{str(k): float(v) for k, v in card_thr.items()}, **class_thr}
        unknown = set(class_thr) - set(class_names)
        if unknown:
            log.warning("class thresholds name unknown classes %s", sorted(unknown))
        thr = np.array([class_thr.get(c, default_thr) for c in class_names], np.float32)
        return cls(conf_thr=thr, iou_thr=iou_thr, max_det=max_det)
