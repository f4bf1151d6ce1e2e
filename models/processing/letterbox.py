"""Letterboxing (resize keeping aspect, pad to a square) and its inverse for boxes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

# Frames are small and resized on the caller's own worker threads: OpenCV's internal
# thread pool would only oversubscribe the cores (and deadlocks in forked loaders).
cv2.setNumThreads(0)

PAD_VALUE = 114


@dataclass(frozen=True)
class LetterboxInfo:
    """How an original image was mapped into the square model input."""

    scale: float
    pad_x: float
    pad_y: float


def letterbox(
    img: np.ndarray,
    size: int,
    pad_value: int = PAD_VALUE,
    orig_size: tuple[int, int] | None = None,
) -> tuple[np.ndarray, LetterboxInfo]:
    """Resize ``img`` (HxWx3 uint8, or HxW greyscale) to fit ``size``x``size`` keeping
    aspect, centred on padding.

    ``orig_size`` is the (width, height) of the frame ``img`` was decoded from when it was
    decoded at a reduced scale (:func:`models.processing.image.decode_scaled`): the output
    and the returned mapping are then exactly those of the full-size frame. OpenCV
    resampling: bilinear when enlarging, area averaging (anti-aliased) when shrinking.
    """
    h, w = img.shape[:2]
    ow, oh = orig_size if orig_size is not None else (w, h)
    scale = min(size / oh, size / ow)
    new_w, new_h = max(1, round(ow * scale)), max(1, round(oh * scale))
    if (new_w, new_h) != (w, h):
        interp = cv2.INTER_AREA if new_w < w else cv2.INTER_LINEAR
        img = cv2.resize(img, (new_w, new_h), interpolation=interp)
    pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
    out = cv2.copyMakeBorder(
        img,
        pad_y,
        size - new_h - pad_y,
        pad_x,
        size - new_w - pad_x,
        cv2.BORDER_CONSTANT,
        value=(pad_value,) * 3,
    )
    return out, LetterboxInfo(scale=scale, pad_x=float(pad_x), pad_y=float(pad_y))


def to_tensor(boxed: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``SxSx3`` uint8 → ``[3,S,S]`` float32 in 0..1, in one pass (into ``out`` if given).

    A greyscale ``SxS`` input is broadcast to three equal channels: the tensor its
    RGB decode would give."""
    if out is None:
        out = np.empty((3, *boxed.shape[:2]), dtype=np.float32)
    src = boxed[None] if boxed.ndim == 2 else boxed.transpose(2, 0, 1)
    np.multiply(src, np.float32(1.0 / 255.0), out=out, casting="unsafe")
    return out


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


def batch_inputs(inputs: Sequence[np.ndarray]) -> np.ndarray:
    """Stack model inputs into ``[N,3,S,S]`` float32 0..1, converting as it copies.

    Each input is either a letterboxed ``SxSx3`` (or greyscale ``SxS``) uint8 image
    (written into its batch slot in one pass: no per-frame float tensor, no second copy
    by ``np.stack``) or an already preprocessed ``[3,S,S]`` float32 tensor.
    """
    first = inputs[0]
    size = first.shape[0] if first.dtype == np.uint8 else first.shape[1]
    out = np.empty((len(inputs), 3, size, size), dtype=np.float32)
    for i, x in enumerate(inputs):
        if x.dtype == np.uint8:
            to_tensor(x, out=out[i])
        else:
            out[i] = x
    return out


def preprocess_batch(
    images: Sequence[np.ndarray],
    size: int,
    orig_sizes: Sequence[tuple[int, int]] | None = None,
) -> tuple[np.ndarray, list[LetterboxInfo]]:
    """Letterbox each RGB uint8 image and stack into the model input ``[N,3,S,S]`` float32
    0..1. ``orig_sizes``: the frames' (width, height) for images decoded at a reduced scale
    (see :func:`letterbox`)."""
    batch = np.empty((len(images), 3, size, size), dtype=np.float32)
    infos: list[LetterboxInfo] = []
    for i, img in enumerate(images):
        boxed, info = letterbox(img, size, orig_size=orig_sizes[i] if orig_sizes else None)
        to_tensor(boxed, out=batch[i])
        infos.append(info)
    return batch, infos
