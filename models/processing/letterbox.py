"""Letterboxing (resize keeping aspect, pad to a square) and its inverse for boxes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

PAD_VALUE = 114


@dataclass(frozen=True)
class LetterboxInfo:
    """How an original image was mapped into the square model input."""

    scale: float
    pad_x: float
    pad_y: float


def letterbox(
    img: np.ndarray, size: int, pad_value: int = PAD_VALUE
) -> tuple[np.ndarray, LetterboxInfo]:
    """Resize ``img`` (HxWx3 uint8) to fit ``size``x``size`` keeping aspect, centred on padding.

    Bilinear resampling via Pillow; returns the padded image and the mapping.
    """
    h, w = img.shape[:2]
    scale = min(size / h, size / w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    if (new_w, new_h) != (w, h):
        resized = np.asarray(Image.fromarray(img).resize((new_w, new_h), Image.Resampling.BILINEAR))
    else:
        resized = img
    pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
    out = np.full((size, size, 3), pad_value, dtype=np.uint8)
    out[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = resized
    return out, LetterboxInfo(scale=scale, pad_x=float(pad_x), pad_y=float(pad_y))


def unletterbox_boxes(
    boxes: np.ndarray, info: LetterboxInfo, width: int, height: int
) -> np.ndarray:
    """Map xyxy boxes from model-input pixels back to original-image pixels, clipped."""
    out = boxes.astype(np.float32, copy=True)
    out[:, [0, 2]] = (out[:, [0, 2]] - info.pad_x) / info.scale
    out[:, [1, 3]] = (out[:, [1, 3]] - info.pad_y) / info.scale
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, width)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, height)
    return out


def letterbox_boxes(boxes: np.ndarray, info: LetterboxInfo) -> np.ndarray:
    """Map xyxy boxes from original-image pixels into model-input pixels."""
    out = boxes.astype(np.float32, copy=True)
    out[:, [0, 2]] = out[:, [0, 2]] * info.scale + info.pad_x
    out[:, [1, 3]] = out[:, [1, 3]] * info.scale + info.pad_y
    return out


def preprocess_batch(images: list[np.ndarray], size: int) -> tuple[np.ndarray, list[LetterboxInfo]]:
    """Letterbox each RGB uint8 image and stack into the model input ``[N,3,S,S]`` float32 0..1."""
    batch = np.empty((len(images), 3, size, size), dtype=np.float32)
    infos: list[LetterboxInfo] = []
    for i, img in enumerate(images):
        boxed, info = letterbox(img, size)
        batch[i] = boxed.transpose(2, 0, 1)
        infos.append(info)
    batch *= 1.0 / 255.0
    return batch, infos
