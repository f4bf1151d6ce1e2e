"""Annotation folders → intake items, one candidate per image, so one bad file is
refused alone. The parsing is the training side's (models/data/formats), shared.

* yolo: a folder with ``data.yaml`` (``names``; ``train``/``val`` image sources); an
  image with a label file is labelled (``ok`` when the file is empty), one without
  stays unlabelled.
* voc: ``Annotations/*.xml`` + ``JPEGImages/``; coco: an instances JSON (the path, or
  the one in the folder) with images beside it or in ``images/``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.data.config import load_data_config
from models.data.formats import (
    label_path_for,
    list_yolo_images,
    parse_annotation,
    read_coco,
    read_yolo_image,
)
from service.errors import InvalidInput
from service.store.intake import Item


@dataclass
class Candidate:
    """One image to import: its name and how to load it (errors refuse it alone)."""

    name: str
    load: Callable[[], Item]


@dataclass
class Source:
    """What a folder holds: the class list it declares and its candidates."""

    classes: list[str]
    candidates: list[Candidate]


def _boxes(rows: Any, names: list[str]) -> list[dict[str, Any]]:
    return [{"box": [float(v) for v in box], "label": names[int(c)]} for box, c in rows]


def yolo(root: Path) -> Source:
    """A YOLO folder with ``data.yaml``."""
    yaml_path = root / "data.yaml" if root.is_dir() else root
    if not yaml_path.is_file():
        raise InvalidInput(f"{root}: a YOLO import needs a data.yaml with 'names'")
    try:
        cfg = load_data_config(yaml_path)
    except (ValueError, OSError) as exc:
        raise InvalidInput(f"{yaml_path}: {exc}") from exc
    if cfg.names is None:
        raise InvalidInput(f"{yaml_path}: 'names' is required")
    names = cfg.names
    images: list[Path] = []
    for entry in (*cfg.train, *(cfg.val or ())):
        try:
            images.extend(list_yolo_images(entry.path))
        except FileNotFoundError as exc:
            raise InvalidInput(str(exc)) from exc

    def loader(path: Path) -> Callable[[], Item]:
        def load() -> Item:
            data = path.read_bytes()
            if not label_path_for(path).is_file():
                return Item(data=data, name=path.name)
            s = read_yolo_image(path, len(names))
            boxes = _boxes(zip(s.boxes.tolist(), s.labels.tolist(), strict=True), names)
            return Item(data=data, boxes=boxes, state="labelled", name=path.name)

        return load

    unique = list(dict.fromkeys(images))
    return Source(names, [Candidate(str(p.relative_to(cfg.root)), loader(p)) for p in unique])


def voc(root: Path) -> Source:
    """A Pascal VOC folder."""
    ann_dir, image_dir = root / "Annotations", root / "JPEGImages"
    if not ann_dir.is_dir():
        raise InvalidInput(f"{root}: a VOC import needs Annotations/ and JPEGImages/")
    parsed: dict[Path, Any] = {}
    for xml in sorted(ann_dir.glob("*.xml")):
        try:
            parsed[xml] = parse_annotation(xml, image_dir)
        except Exception as exc:  # a bad XML is refused alone
            parsed[xml] = exc
    names = sorted({n for p in parsed.values() if isinstance(p, tuple) for n, _ in p[3]})

    def loader(xml: Path) -> Callable[[], Item]:
        def load() -> Item:
            got = parsed[xml]
            if isinstance(got, Exception):
                raise InvalidInput(f"bad VOC annotation: {got}")
            image_path, _w, _h, objects = got
            boxes = [{"box": box, "label": name} for name, box in objects]
            return Item(
                data=image_path.read_bytes(), boxes=boxes, state="labelled", name=image_path.name
            )

        return load

    return Source(names, [Candidate(xml.name, loader(xml)) for xml in parsed])


def _coco_json(root: Path) -> Path:
    if root.is_file():
        return root
    found = sorted(root.glob("*.json")) or sorted(root.glob("annotations/*.json"))
    if not found:
        raise InvalidInput(f"{root}: a COCO import needs an instances JSON")
    return found[0]


def coco(root: Path) -> Source:
    """A COCO instances JSON and its images."""
    json_path = _coco_json(root)
    image_dir = json_path.parent
    if (image_dir / "images").is_dir():
        image_dir = image_dir / "images"
    try:
        samples, names = read_coco(json_path, image_dir)
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise InvalidInput(f"{json_path}: not a usable COCO instances file: {exc}") from exc

    def loader(i: int) -> Callable[[], Item]:
        def load() -> Item:
            s = samples[i]
            boxes = _boxes(zip(s.boxes.tolist(), s.labels.tolist(), strict=True), names)
            return Item(
                data=s.image_path.read_bytes(),
                boxes=boxes,
                state="labelled",
                name=s.image_path.name,
            )

        return load

    return Source(names, [Candidate(s.image_path.name, loader(i)) for i, s in enumerate(samples)])


READERS: dict[str, Callable[[Path], Source]] = {"yolo": yolo, "voc": voc, "coco": coco}
