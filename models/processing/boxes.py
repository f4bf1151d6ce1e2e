"""Box utilities and non-maximum suppression in numpy."""

from __future__ import annotations

import numpy as np


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """Convert centre-size boxes ``[..., 4]`` to corner boxes."""
    out = np.empty_like(boxes)
    half_w, half_h = boxes[..., 2] / 2, boxes[..., 3] / 2
    out[..., 0] = boxes[..., 0] - half_w
    out[..., 1] = boxes[..., 1] - half_h
    out[..., 2] = boxes[..., 0] + half_w
    out[..., 3] = boxes[..., 1] + half_h
    return out


def box_area(boxes: np.ndarray) -> np.ndarray:
    """Area of xyxy boxes (negative extents count as zero)."""
    area: np.ndarray = (boxes[..., 2] - boxes[..., 0]).clip(0) * (
        boxes[..., 3] - boxes[..., 1]
    ).clip(0)
    return area


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes ``a [N,4]`` and ``b [M,4]`` → ``[N,M]``."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clip(0).prod(axis=2)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    iou: np.ndarray = inter / np.maximum(union, 1e-9)
    return iou


def nms(
    boxes: np.ndarray, scores: np.ndarray, iou_thr: float, max_keep: int | None = None
) -> np.ndarray:
    """Greedy NMS; returns kept indices in descending score order.

    Stops once ``max_keep`` boxes are kept: the rest could only be dropped later.
    """
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    areas = box_area(boxes)
    while order.size and (max_keep is None or len(keep) < max_keep):
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        if not rest.size:
            break
        lt = np.maximum(boxes[i, :2], boxes[rest, :2])
        rb = np.minimum(boxes[i, 2:], boxes[rest, 2:])
        inter = (rb - lt).clip(0).prod(axis=1)
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9)
        order = rest[iou <= iou_thr]
    return np.asarray(keep, dtype=np.int64)


def batched_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    iou_thr: float,
    max_keep: int | None = None,
) -> np.ndarray:
    """Class-aware NMS: boxes of different classes never suppress each other.

    Uses the coordinate-offset trick (one NMS over boxes shifted apart per class).
    """
    if boxes.size == 0:
        return np.zeros(0, dtype=np.int64)
    offset = classes.astype(np.float32)[:, None] * (float(boxes.max()) + 1.0)
    return nms(boxes + offset, scores, iou_thr, max_keep)
