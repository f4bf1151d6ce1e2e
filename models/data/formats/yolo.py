"""YOLO layout: ``images/<split>/x.jpg`` with ``labels/<split>/x.txt`` (``cls cx cy w h``, 0..1).

A split may be given as an image directory, a ``.txt`` file listing image paths (relative
to the list's directory or absolute), or a list of either. An image without a label file
is a background image (no boxes). Polygon rows (``cls x1 y1 x2 y2 ...``, segmentation
labels) are reduced to their bounding box.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from models.data.sample import Sample, clip_boxes, image_size

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"})


def label_path_for(image_path: Path) -> Path:
    """The label file of an image: last ``/images/`` path component → ``/labels/``, ``.txt``."""
    s = str(image_path)
    img_dir, lbl_dir = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    if img_dir in s:
        head, tail = s.rsplit(img_dir, 1)
        s = head + lbl_dir + tail
    return Path(s).with_suffix(".txt")


def _list_images(source: Path) -> list[Path]:
    if source.is_dir():
        return sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if source.is_file() and source.suffix == ".txt":
        out: list[Path] = []
        for line in source.read_text().splitlines():
            line = line.strip()
            if line:
                p = Path(line)
                out.append(p if p.is_absolute() else (source.parent / p))
        return out
    raise FileNotFoundError(f"YOLO split {source} is neither an image directory nor a .txt list")


def _parse_label_file(path: Path, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    boxes: list[list[float]] = []
    labels: list[int] = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 5 or len(parts) % 2 == 0:
            raise ValueError(f"{path}:{n}: expected 'cls cx cy w h' or a polygon, got {line!r}")
        cls = int(float(parts[0]))
        vals = [float(v) for v in parts[1:]]
        if len(vals) == 4:
            cx, cy, w, h = vals
            x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
        else:  # polygon: x1 y1 x2 y2 ...
            xs, ys = vals[0::2], vals[1::2]
            x1, y1, x2, y2 = min(xs), min(ys), max(xs), max(ys)
        boxes.append([x1 * width, y1 * height, x2 * width, y2 * height])
        labels.append(cls)
    arr = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return arr.astype(np.float32), np.asarray(labels, dtype=np.int64)


def read_yolo(
    source: Path | str | Sequence[Path | str], num_classes: int | None = None
) -> list[Sample]:
    """Read a YOLO split (image dir, ``.txt`` image list, or a list of those) into samples.

    Boxes are converted to xyxy original pixels and clipped to the image; degenerate
    boxes (zero width or height after clipping) are dropped with a warning. Raises
    ``ValueError`` for a class id outside ``[0, num_classes)`` when ``num_classes`` is given.
    """
    sources = [source] if isinstance(source, str | Path) else list(source)
    images: list[Path] = []
    for src in sources:
        images.extend(_list_images(Path(src)))
    return [read_yolo_image(img_path, num_classes) for img_path in images]


def list_yolo_images(source: Path | str) -> list[Path]:
    """The images of one YOLO split source (an image directory or a ``.txt`` list)."""
    return _list_images(Path(source))


def read_yolo_image(img_path: Path, num_classes: int | None = None) -> Sample:
    """Read one image's size and its label file (see :func:`read_yolo`)."""
    width, height = image_size(img_path)
    lbl = label_path_for(img_path)
    if lbl.is_file():
        boxes, labels = _parse_label_file(lbl, width, height)
    else:
        boxes, labels = np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
    if (
        num_classes is not None
        and labels.size
        and (labels.min() < 0 or labels.max() >= num_classes)
    ):
        raise ValueError(f"{lbl}: class id outside [0, {num_classes})")
    boxes = clip_boxes(boxes, width, height)
    ok = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    if not ok.all():
        log.warning("%s: dropped %d degenerate box(es)", lbl, int((~ok).sum()))
    return Sample(img_path, width, height, boxes[ok], labels[ok])


def write_yolo(
    samples: Sequence[Sample], root: Path, split: str, class_names: Sequence[str]
) -> Path:
    """Write samples as a YOLO dataset under ``root`` and return its ``data.yaml``.

    Images are copied to ``root/images/<split>/`` (kept as they are), labels written to
    ``root/labels/<split>/`` with 8 decimals, and ``root/data.yaml`` (re)written with this
    split as ``train`` (or ``val`` when ``split`` starts with ``val``) and ``names``.
    """
    import yaml

    root = Path(root)
    img_dir, lbl_dir = root / "images" / split, root / "labels" / split
    img_dir.mkdir(parents=True, exist_ok=True)
    lbl_dir.mkdir(parents=True, exist_ok=True)
    for s in samples:
        dst = img_dir / s.image_path.name
        if s.image_path.resolve() != dst.resolve():
            shutil.copyfile(s.image_path, dst)
        lines = []
        for (x1, y1, x2, y2), cls in zip(s.boxes.astype(np.float64), s.labels, strict=True):
            cx, cy = (x1 + x2) / 2 / s.width, (y1 + y2) / 2 / s.height
            w, h = (x2 - x1) / s.width, (y2 - y1) / s.height
            lines.append(f"{int(cls)} {cx:.8f} {cy:.8f} {w:.8f} {h:.8f}")
        (lbl_dir / dst.with_suffix(".txt").name).write_text(
            "\n".join(lines) + ("\n" if lines else "")
        )
    yaml_path = root / "data.yaml"
    cfg = yaml.safe_load(yaml_path.read_text()) if yaml_path.is_file() else {}
    cfg = cfg or {}
    cfg.update({"path": ".", "names": list(class_names), "format": "yolo"})
    cfg["val" if split.startswith("val") else "train"] = f"images/{split}"
    yaml_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return yaml_path
