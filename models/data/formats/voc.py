"""Pascal VOC layout: ``<root>/Annotations/<id>.xml`` and ``<root>/JPEGImages/<file>``.

VOC corners are 1-based inclusive pixel indices; they are read as continuous pixel
coordinates with ``x1 = xmin - 1, y1 = ymin - 1, x2 = xmax, y2 = ymax`` (and written back
with the inverse), so a box covering the whole W-pixel-wide image is ``[0, W]``.
Optionally restricted to an image-set file (``ImageSets/Main/<set>.txt``, one id a line).
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from models.data.sample import Sample, clip_boxes, image_size


def _text(node: ET.Element, tag: str, default: str | None = None) -> str:
    child = node.find(tag)
    if child is None or child.text is None:
        if default is None:
            raise ValueError(f"VOC annotation is missing <{tag}>")
        return default
    return child.text.strip()


def parse_annotation(
    xml_path: Path, image_dir: Path
) -> tuple[Path, int, int, list[tuple[str, list[float]]]]:
    """One VOC XML: image path, width, height and ``(name, xyxy continuous px)`` objects."""
    root = ET.parse(xml_path).getroot()
    filename = _text(root, "filename", xml_path.stem + ".jpg")
    image_path = image_dir / filename
    size = root.find("size")
    width = int(float(_text(size, "width", "0"))) if size is not None else 0
    height = int(float(_text(size, "height", "0"))) if size is not None else 0
    if width <= 0 or height <= 0:
        width, height = image_size(image_path)
    objects = []
    for obj in root.iter("object"):
        bb = obj.find("bndbox")
        if bb is None:
            continue
        xmin, ymin, xmax, ymax = (float(_text(bb, t)) for t in ("xmin", "ymin", "xmax", "ymax"))
        objects.append((_text(obj, "name"), [xmin - 1.0, ymin - 1.0, xmax, ymax]))
    return image_path, width, height, objects


def read_voc(
    root: Path | str,
    class_names: Sequence[str] | None = None,
    image_set: Path | str | None = None,
) -> tuple[list[Sample], list[str]]:
    """Read a VOC directory into samples and class names.

    ``class_names`` fixes the id order (an unknown object name raises ``ValueError``);
    without it the names are the sorted set of object names found. ``image_set`` is an
    optional file of annotation ids (relative paths resolve against ``root``).
    """
    root = Path(root)
    ann_dir, image_dir = root / "Annotations", root / "JPEGImages"
    if image_set is not None:
        set_path = Path(image_set) if Path(image_set).is_absolute() else root / image_set
        ids = [ln.split()[0] for ln in set_path.read_text().splitlines() if ln.strip()]
        xml_files = [ann_dir / f"{i}.xml" for i in ids]
    else:
        xml_files = sorted(ann_dir.glob("*.xml"))
    parsed = [parse_annotation(p, image_dir) for p in xml_files]
    if class_names is None:
        names = sorted({name for *_, objs in parsed for name, _ in objs})
    else:
        names = list(class_names)
    index = {n: i for i, n in enumerate(names)}
    samples: list[Sample] = []
    for (image_path, width, height, objs), xml_path in zip(parsed, xml_files, strict=True):
        unknown = [n for n, _ in objs if n not in index]
        if unknown:
            raise ValueError(f"{xml_path}: unknown class name(s) {sorted(set(unknown))}")
        boxes = clip_boxes(
            np.asarray([b for _, b in objs], np.float32).reshape(-1, 4), width, height
        )
        labels = np.asarray([index[n] for n, _ in objs], np.int64)
        samples.append(Sample(image_path, width, height, boxes, labels))
    return samples, names


def _fmt(v: float) -> str:
    r = round(v)
    return str(int(r)) if abs(v - r) < 1e-6 else f"{v:.6f}".rstrip("0")


def write_voc(samples: Sequence[Sample], root: Path, class_names: Sequence[str]) -> None:
    """Write samples as a VOC directory: copy images to ``JPEGImages/``, one XML per image.

    Non-integer corners are written with 6 decimals (the reader accepts floats), so a
    round trip is exact to ~1e-6 px.
    """
    root = Path(root)
    ann_dir, image_dir = root / "Annotations", root / "JPEGImages"
    ann_dir.mkdir(parents=True, exist_ok=True)
    image_dir.mkdir(parents=True, exist_ok=True)
    for s in samples:
        dst = image_dir / s.image_path.name
        if s.image_path.resolve() != dst.resolve():
            shutil.copyfile(s.image_path, dst)
        ann = ET.Element("annotation")
        ET.SubElement(ann, "folder").text = "JPEGImages"
        ET.SubElement(ann, "filename").text = dst.name
        size = ET.SubElement(ann, "size")
        for tag, val in (("width", s.width), ("height", s.height), ("depth", 3)):
            ET.SubElement(size, tag).text = str(val)
        for (x1, y1, x2, y2), cls in zip(s.boxes.astype(np.float64), s.labels, strict=True):
            obj = ET.SubElement(ann, "object")
            ET.SubElement(obj, "name").text = class_names[int(cls)]
            ET.SubElement(obj, "difficult").text = "0"
            bb = ET.SubElement(obj, "bndbox")
            for tag, val in (("xmin", x1 + 1), ("ymin", y1 + 1), ("xmax", x2), ("ymax", y2)):
                ET.SubElement(bb, tag).text = _fmt(val)
        ET.indent(ann)
        ET.ElementTree(ann).write(
            ann_dir / f"{dst.stem}.xml", encoding="utf-8", xml_declaration=True
        )
