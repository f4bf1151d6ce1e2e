"""``lineinspect data export``: a dataset as YOLO, COCO or Label Studio tasks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from models.data.formats import write_coco
from models.data.sample import Sample as TrainSample
from service.errors import InvalidInput
from service.store import datasets, labelstudio, snapshots
from service.store.store import Store

FORMATS = ("labelstudio", "yolo", "coco")


def export(
    store: Store, dataset: str, fmt: str, out: Path, base_url: str, from_name: str, to_name: str
) -> dict[str, Any]:
    """Write ``dataset`` to ``out``; returns what was written."""
    out = Path(out)
    if fmt == "labelstudio":
        tasks = labelstudio.export_tasks(store, dataset, base_url, from_name, to_name)
        with store.transaction() as s:
            classes = list(datasets.get(s, dataset).classes)
        out.mkdir(parents=True, exist_ok=True)
        (out / "tasks.json").write_text(json.dumps(tasks, indent=1))
        (out / "labeling-config.xml").write_text(
            labelstudio.label_config(classes, from_name, to_name)
        )
        return {"tasks": len(tasks), "files": ["tasks.json", "labeling-config.xml"]}
    if fmt not in FORMATS:
        raise InvalidInput(f"format must be one of {list(FORMATS)}, got {fmt!r}")
    with store.transaction() as s:
        ds = datasets.get(s, dataset)
        entries = snapshots.manifest(s, ds)
        classes = list(ds.classes)
    if fmt == "yolo":
        yaml_path = snapshots.materialise(
            store.blobs, classes, entries, out, {"dataset": dataset, "export": True}
        )
        return {"images": len(entries), "files": [str(yaml_path.relative_to(out))]}
    index = {c: i for i, c in enumerate(classes)}
    items = [
        TrainSample(
            store.blobs.path(e.sample.sha256).with_name(e.file_name),
            e.sample.width,
            e.sample.height,
            np.asarray([b["box"] for b in e.label.boxes], np.float32).reshape(-1, 4),
            np.asarray([index[b["label"]] for b in e.label.boxes], np.int64),
        )
        for e in entries
    ]
    image_dir = out / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    for e in entries:
        snapshots.link_file(store.blobs.path(e.sample.sha256), image_dir / e.file_name)
    moved = [
        TrainSample(image_dir / s.image_path.name, s.width, s.height, s.boxes, s.labels)
        for s in items
    ]
    write_coco(moved, classes, out / "instances.json", image_dir)
    return {"images": len(entries), "files": ["instances.json", "images/"]}
