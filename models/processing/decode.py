"""Decode raw detector output into boxes and class scores (docs/contracts.md)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from models.processing.spec import ModelSpec

_MAX_EXP = 10.0  # exp() clamp: larger sizes are garbage anyway, and it avoids overflow


@lru_cache(maxsize=32)
def prediction_grid(spec: ModelSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Per-row grid cell ``[A,2]``, stride ``[A]`` and anchor size ``[A,2]`` (or None).

    Rows follow the contract order: levels by stride, then (anchor, y, x).
    Cached per spec: it is recomputed only when a new model shape appears.
    """
    cells, strides, anchors = [], [], []
    na = spec.anchors_per_level
    for level, s in enumerate(spec.strides):
        n = spec.imgsz // s
        ys, xs = np.meshgrid(
            np.arange(n, dtype=np.float32), np.arange(n, dtype=np.float32), indexing="ij"
        )
        xy = np.stack([xs.ravel(), ys.ravel()], axis=1)
        cells.append(np.tile(xy, (na, 1)))
        strides.append(np.full(na * n * n, s, dtype=np.float32))
        if spec.anchors is not None:
            wh = np.asarray(spec.anchors[level], dtype=np.float32)
            anchors.append(np.repeat(wh, n * n, axis=0))
    grid, stride = np.concatenate(cells), np.concatenate(strides)
    for arr in (grid, stride):
        arr.flags.writeable = False
    return grid, stride, (np.concatenate(anchors) if anchors else None)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1.0 / (1.0 + np.exp(-x))
    return out


def decode_boxes(raw: np.ndarray, spec: ModelSpec, rows: np.ndarray | None = None) -> np.ndarray:
    """Decode ``raw[..., :4]`` (rows of one image, ``[A',5+C]``) to xyxy input pixels.

    ``rows`` selects which grid rows ``raw`` holds (all rows when None).
    """
    grid, stride, anchor = prediction_grid(spec)
    if rows is not None:
        grid, stride = grid[rows], stride[rows]
        anchor = None if anchor is None else anchor[rows]
    t = raw[..., :4].astype(np.float32)
    s = stride[:, None]
    if spec.head == "anchor_free":
        cxy = (t[:, :2] + grid) * s
        wh = np.exp(np.minimum(t[:, 2:4], _MAX_EXP)) * s
    else:
        assert anchor is not None
        st = _sigmoid(t)
        cxy = (st[:, :2] * 2.0 - 0.5 + grid) * s
        wh = (st[:, 2:4] * 2.0) ** 2 * anchor
    half = wh / 2
    return np.concatenate([cxy - half, cxy + half], axis=1)


def decode_predictions(raw: np.ndarray, spec: ModelSpec) -> tuple[np.ndarray, np.ndarray]:
    """Decode a whole batch ``[N,A,5+C]`` → boxes ``[N,A,4]`` (xyxy input px), scores ``[N,A,C]``.

    Score per class is ``sigmoid(obj) * sigmoid(cls)``.
    """
    if (
        raw.ndim != 3
        or raw.shape[1] != spec.num_predictions
        or raw.shape[2] != 5 + spec.num_classes
    ):
        raise ValueError(
            f"raw output shape {raw.shape} does not match spec "
            f"[N,{spec.num_predictions},{5 + spec.num_classes}]"
        )
    boxes = np.stack([decode_boxes(r, spec) for r in raw])
    scores = _sigmoid(raw[..., 4:5]) * _sigmoid(raw[..., 5:])
    return boxes, scores.astype(np.float32)
