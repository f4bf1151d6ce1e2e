"""Training augmentation for greyscale steel: mosaic, flips, small affine, brightness/contrast.

No colour or hue transforms (the images are grey stored as RGB, and a colour shift would
teach nothing useful). Every random draw comes from the ``numpy.random.Generator`` passed
in, so a sample is reproducible from its seed. Boxes follow every geometric step, are
clipped to the visible image and dropped when they end up tiny (< ``min_size`` px wide or
high in the final input) or keep less than ``min_area_frac`` of their (scaled) area. The
last step is always :func:`models.processing.letterbox`, the one serving implementation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from models.processing.letterbox import PAD_VALUE, LetterboxInfo, letterbox, letterbox_boxes

# OpenCV's own thread pool is not fork-safe: a DataLoader worker forked while the pool holds
# a lock deadlocks on its first cv2 call. Images here are tiny, so run cv2 sequentially in
# every process (set before any pool exists); parallelism comes from loader workers.
cv2.setNumThreads(0)

# One labelled image: HxWx3 RGB or HxW grey uint8, float32 [K,4] xyxy pixels, int64 [K] class ids.
# Grey images (stored once, not three times) are 3x cheaper to augment; the output is RGB.
Item = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation magnitudes (probabilities in 0..1, ranges as ± fractions)."""

    flip_lr: float = 0.5  # probability of a horizontal flip
    flip_ud: float = 0.5  # probability of a vertical flip
    scale: float = 0.3  # zoom factor drawn from [1 - scale, 1 + scale]
    translate: float = 0.1  # shift drawn from ± translate x output size
    degrees: float = 0.0  # rotation drawn from ± degrees (keep small: boxes loosen)
    brightness: float = 0.15  # offset drawn from ± brightness x 255
    contrast: float = 0.25  # gain around the image mean drawn from [1 - c, 1 + c]
    min_size: float = 2.0  # drop boxes narrower/lower than this (final input pixels)
    min_area_frac: float = 0.2  # drop boxes keeping less than this fraction of their area


def to_rgb(img: np.ndarray) -> np.ndarray:
    """``HxW`` grey → ``HxWx3`` (R = G = B); ``HxWx3`` is returned as is."""
    return np.repeat(img[:, :, None], 3, axis=2) if img.ndim == 2 else img


def brightness_contrast(
    img: np.ndarray, rng: np.random.Generator, brightness: float, contrast: float
) -> np.ndarray:
    """Same gain/offset on every channel (grey stays grey): ``(x - mean) * a + mean + b``."""
    a = rng.uniform(1 - contrast, 1 + contrast)
    b = rng.uniform(-brightness, brightness) * 255.0
    if a == 1.0 and b == 0.0:
        return img
    channels = img.shape[2] if img.ndim == 3 else 1
    mean = float(np.mean(cv2.mean(img)[:channels]))
    lut = np.clip((np.arange(256, dtype=np.float32) - mean) * a + mean + b, 0, 255).astype(np.uint8)
    return cv2.LUT(img, lut)


def transform_boxes(boxes: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine ``m`` to xyxy boxes: the axis-aligned hull of the 4 mapped corners."""
    if boxes.shape[0] == 0:
        return boxes.astype(np.float32)
    x1, y1, x2, y2 = boxes.T
    xs = np.stack([x1, x2, x2, x1], axis=1)
    ys = np.stack([y1, y1, y2, y2], axis=1)
    mx = m[0, 0] * xs + m[0, 1] * ys + m[0, 2]
    my = m[1, 0] * xs + m[1, 1] * ys + m[1, 2]
    return np.stack([mx.min(1), my.min(1), mx.max(1), my.max(1)], axis=1).astype(np.float32)


def _clip(boxes: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    out = boxes.copy()
    out[:, [0, 2]] = out[:, [0, 2]].clip(x0, x1)
    out[:, [1, 3]] = out[:, [1, 3]].clip(y0, y1)
    return out


def _area(boxes: np.ndarray) -> np.ndarray:
    area: np.ndarray = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(
        boxes[:, 3] - boxes[:, 1], 0, None
    )
    return area


def random_affine(
    img: np.ndarray,
    boxes: np.ndarray,
    rng: np.random.Generator,
    cfg: AugmentConfig,
    out_wh: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray, float]:
    """Zoom/shift/(small) rotate about the image centre into an ``out_wh`` canvas.

    Returns the warped image, the (unclipped) transformed boxes and the area gain ``s**2``.
    """
    h, w = img.shape[:2]
    ow, oh = out_wh
    s = rng.uniform(1 - cfg.scale, 1 + cfg.scale)
    angle = rng.uniform(-cfg.degrees, cfg.degrees) if cfg.degrees else 0.0
    tx = rng.uniform(-cfg.translate, cfg.translate) * ow
    ty = rng.uniform(-cfg.translate, cfg.translate) * oh
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, s)  # rotate+scale about the input centre
    m[0, 2] += ow / 2 - w / 2 + tx  # then move the input centre to the output centre + shift
    m[1, 2] += oh / 2 - h / 2 + ty
    out = cv2.warpAffine(img, m, (ow, oh), flags=cv2.INTER_LINEAR, borderValue=(PAD_VALUE,) * 3)
    return out, transform_boxes(boxes, m), float(s * s)


def flip(img: np.ndarray, boxes: np.ndarray, horizontal: bool) -> tuple[np.ndarray, np.ndarray]:
    """Mirror left-right (``horizontal``) or top-bottom, with the boxes."""
    h, w = img.shape[:2]
    out = boxes.copy()
    if horizontal:
        out[:, [0, 2]] = w - boxes[:, [2, 0]]
        return cv2.flip(img, 1), out
    out[:, [1, 3]] = h - boxes[:, [3, 1]]
    return cv2.flip(img, 0), out


def mosaic4(
    items: Sequence[Item], size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Tile 4 images (longer side resized to ``size``) around a random centre of a 2S canvas.

    Returns the ``2S x 2S`` canvas, the boxes clipped to their tile's visible part, the
    labels and each box's unclipped area (the reference for the kept-area rule).
    """
    s2 = 2 * size
    canvas = np.full((s2, s2, *items[0][0].shape[2:]), PAD_VALUE, dtype=np.uint8)
    xc, yc = (int(rng.uniform(0.5 * size, 1.5 * size)) for _ in range(2))
    all_boxes, all_labels, all_area = [], [], []
    for i, (img, boxes, labels) in enumerate(items):
        h0, w0 = img.shape[:2]
        r = size / max(h0, w0)
        w, h = max(1, round(w0 * r)), max(1, round(h0 * r))
        if (w, h) != (w0, h0):
            img = cv2.resize(
                img, (w, h), interpolation=cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR
            )
        # placement rectangle (a) on the canvas, source rectangle (b) in the tile
        x1a, x2a = (max(xc - w, 0), xc) if i in (0, 2) else (xc, min(xc + w, s2))
        y1a, y2a = (max(yc - h, 0), yc) if i in (0, 1) else (yc, min(yc + h, s2))
        x1b = w - (x2a - x1a) if i in (0, 2) else 0
        y1b = h - (y2a - y1a) if i in (0, 1) else 0
        canvas[y1a:y2a, x1a:x2a] = img[y1b : y1b + (y2a - y1a), x1b : x1b + (x2a - x1a)]
        b = boxes.astype(np.float32).reshape(-1, 4)
        b[:, [0, 2]] *= w / w0
        b[:, [1, 3]] *= h / h0
        b[:, [0, 2]] += x1a - x1b
        b[:, [1, 3]] += y1a - y1b
        all_area.append(_area(b))
        all_boxes.append(_clip(b, x1a, y1a, x2a, y2a))
        all_labels.append(labels)
    return (
        canvas,
        np.concatenate(all_boxes).reshape(-1, 4),
        np.concatenate(all_labels).astype(np.int64),
        np.concatenate(all_area).astype(np.float32),
    )


def keep_boxes(
    boxes: np.ndarray, area0: np.ndarray, min_size: float, min_area_frac: float
) -> np.ndarray:
    """Mask of clipped boxes to keep: both sides >= ``min_size``, non-empty, and at least
    ``min_area_frac`` of ``area0`` (each box's full area before clipping, same scale)."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    keep: np.ndarray = (w >= min_size) & (h >= min_size) & (w * h > 0)
    keep &= w * h >= min_area_frac * area0 - 1e-6
    return keep


def augment_items(
    items: Sequence[Item], size: int, rng: np.random.Generator, cfg: AugmentConfig = AugmentConfig()
) -> tuple[np.ndarray, np.ndarray, np.ndarray, LetterboxInfo]:
    """Augment one training image (1 item) or a mosaic (4 items) into a ``size`` square input.

    Order: per-image brightness/contrast → (mosaic) → random affine → flips → letterbox →
    box clipping and filtering. Returns the ``size x size x 3`` uint8 image, float32 xyxy
    boxes in input pixels, int64 labels and the final letterbox mapping.
    """
    if len(items) not in (1, 4):
        raise ValueError(f"augment takes 1 image or 4 (mosaic), got {len(items)}")
    if any(im.ndim == 3 for im, _, _ in items):
        items = [(to_rgb(im), b, lb) for im, b, lb in items]
    items = [
        (brightness_contrast(im, rng, cfg.brightness, cfg.contrast), b, lb) for im, b, lb in items
    ]
    if len(items) == 4:
        img, boxes, labels, area0 = mosaic4(items, size, rng)
        out_wh = (size, size)
    else:
        img, boxes, labels = items[0]
        boxes = boxes.astype(np.float32).reshape(-1, 4)
        area0 = _area(boxes)
        out_wh = (img.shape[1], img.shape[0])
    img, boxes, gain = random_affine(img, boxes, rng, cfg, out_wh)
    area0 = area0 * gain
    if rng.random() < cfg.flip_lr:
        img, boxes = flip(img, boxes, horizontal=True)
    if rng.random() < cfg.flip_ud:
        img, boxes = flip(img, boxes, horizontal=False)
    h0, w0 = img.shape[:2]
    img, info = letterbox(to_rgb(img), size)
    boxes = letterbox_boxes(boxes, info)
    area0 = area0 * info.scale**2
    hi_x = info.pad_x + max(1, round(w0 * info.scale))
    hi_y = info.pad_y + max(1, round(h0 * info.scale))
    boxes = _clip(boxes, info.pad_x, info.pad_y, hi_x, hi_y)
    keep = keep_boxes(boxes, area0, cfg.min_size, cfg.min_area_frac)
    return img, boxes[keep].astype(np.float32), labels[keep].astype(np.int64), info
