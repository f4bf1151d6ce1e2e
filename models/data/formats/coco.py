"""COCO layout: an ``instances`` JSON (``images``, ``annotations``, ``categories``) + images.

COCO boxes are ``[x, y, w, h]`` in continuous pixel coordinates, so ``xyxy = x, y, x+w, y+h``.
Categories map to contiguous ids in ascending COCO category id (or by name when
``class_names`` is given). Crowd annotations (``iscrowd=1``) are skipped; images without
annotations are kept as background images.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.data.sample import Sample, clip_boxes


def samples_to_coco(samples: Sequence[Sample], class_names: Sequence[str]) -> dict[str, Any]:
    """Build a COCO ``instances`` dict from samples (image id = index + 1, category = class + 1).

    This is the one samples→COCO conversion, used by :func:`write_coco` and by the
    pycocotools evaluation (``models.evaluate``).
    """
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for i, s in enumerate(samples):
        images.append(
            {"id": i + 1, "file_name": s.image_path.name, "width": s.width, "height": s.height}
        )
        for (x1, y1, x2, y2), cls in zip(s.boxes.astype(np.float64), s.labels, strict=True):
            w, h = x2 - x1, y2 - y1
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": int(cls) + 1,
                    "bbox": [x1, y1, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    categories = [
        {"id": c + 1, "name": n, "supercategory": "defect"} for c, n in enumerate(class_names)
    ]
    return {
        "info": {"description": "lineinspect"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }


def read_coco(
    json_path: Path | str,
    image_dir: Path | str | None = None,
    class_names: Sequence[str] | None = None,
) -> tuple[list[Sample], list[str]]:
    """Read a COCO ``instances`` JSON into samples and class names.

    ``image_dir`` (default: the JSON's directory) is where ``file_name`` resolves.
    ``class_names`` fixes the id order by category name (unknown names raise ``ValueError``).
    """
    json_path = Path(json_path)
    image_dir = Path(image_dir) if image_dir is not None else json_path.parent
    data = json.loads(json_path.read_text())
    cats = sorted(data.get("categories", []), key=lambda c: c["id"])
    if class_names is None:
        names = [c["name"] for c in cats]
    else:
        names = list(class_names)
        missing = [c["name"] for c in cats if c["name"] not in names]
        if missing:
            raise ValueError(f"{json_path}: categories not in class names: {missing}")
    cat_to_cls = {c["id"]: names.index(c["name"]) for c in cats}
    per_image: dict[int, list[dict[str, Any]]] = {}
    for ann in data.get("annotations", []):
        if ann.get("iscrowd", 0):
            continue
        per_image.setdefault(ann["image_id"], []).append(ann)
    samples: list[Sample] = []
    for img in data["images"]:
        anns = per_image.get(img["id"], [])
        width, height = int(img["width"]), int(img["height"])
        xywh = np.asarray([a["bbox"] for a in anns], np.float64).reshape(-1, 4)
        boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        try:
            labels = np.asarray([cat_to_cls[a["category_id"]] for a in anns], np.int64)
        except KeyError as exc:
            raise ValueError(f"{json_path}: annotation with unknown category id {exc}") from exc
        boxes = clip_boxes(boxes, width, height)
        samples.append(Sample(image_dir / img["file_name"], width, height, boxes, labels))
    return samples, names


def write_coco(
    samples: Sequence[Sample], class_names: Sequence[str], json_path: Path, image_dir: Path
) -> None:
    """Write samples as COCO: images copied into ``image_dir``, instances JSON to ``json_path``.

    Image file names must be unique (``file_name`` is the bare name inside ``image_dir``).
    """
    json_path, image_dir = Path(json_path), Path(image_dir)
    names = [s.image_path.name for s in samples]
    if len(set(names)) != len(names):
        raise ValueError("write_coco needs unique image file names")
    image_dir.mkdir(parents=True, exist_ok=True)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    for s in samples:
        dst = image_dir / s.image_path.name
        if s.image_path.resolve() != dst.resolve():
            shutil.copyfile(s.image_path, dst)
    json_path.write_text(json.dumps(samples_to_coco(samples, class_names)))
