"""The in-memory record of one labelled image, shared by every reader and the dataset."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


def _empty_boxes() -> np.ndarray:
    return np.zeros((0, 4), dtype=np.float32)


def _empty_labels() -> np.ndarray:
    return np.zeros(0, dtype=np.int64)


@dataclass
class Sample:
    """One image and its boxes.

    ``boxes`` are float32 ``[K,4]`` xyxy in original-image pixels (continuous coordinates:
    a box covering pixel columns 0..9 is ``x1=0, x2=10``); ``labels`` are int64 ``[K]``
    contiguous class ids (indices into the dataset's class names).
    """

    image_path: Path
    width: int
    height: int
    boxes: np.ndarray = field(default_factory=_empty_boxes)  # float32 [K,4] xyxy, original px
    labels: np.ndarray = field(default_factory=_empty_labels)  # int64 [K]

    def __post_init__(self) -> None:
        self.image_path = Path(self.image_path)
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if self.boxes.shape[0] != self.labels.shape[0]:
            raise ValueError(
                f"{self.image_path}: {self.boxes.shape[0]} boxes but {self.labels.shape[0]} labels"
            )

    @property
    def majority_class(self) -> int:
        """The most frequent class id among the boxes (lowest id on ties), ``-1`` if none."""
        if self.labels.size == 0:
            return -1
        return int(np.bincount(self.labels).argmax())


def image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of an image file, read from its header only (nothing decoded)."""
    from PIL import Image

    with Image.open(path) as img:
        return int(img.size[0]), int(img.size[1])


def clip_boxes(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Clip xyxy boxes to the image rectangle ``[0,width] x [0,height]`` (returns a copy)."""
    out = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, width)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, height)
    return out
