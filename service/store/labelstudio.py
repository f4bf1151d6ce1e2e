"""Label Studio's JSON task format, both ways, and its webhook events.

Format reference: https://labelstud.io/guide/predictions (pre-annotations),
https://labelstud.io/guide/task_format (exported tasks) and
https://labelstud.io/guide/webhook_reference (webhook payloads). A rectangle's
``value.x``/``value.y`` is its top-left corner and ``width``/``height`` its size, all in
percent of ``original_width``/``original_height``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from sqlalchemy import select

from service.errors import InvalidInput
from service.store import datasets, labels
from service.store.intake import Item, probe
from service.store.readers import Candidate, Source
from service.store.schema import Dataset, Label, Sample
from service.store.store import Store

_SHA_URL = re.compile(r"/v1/samples/([0-9a-f]{64})/image")
_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")
REF_PREFIX = "ls-annotation:"


def label_config(classes: Sequence[str], from_name: str = "label", to_name: str = "image") -> str:
    """The labeling-config XML matching the exported tasks."""
    rows = "\n".join(f"    <Label value={quoteattr(c)}/>" for c in classes)
    return (
        "<View>\n"
        f'  <Image name={quoteattr(to_name)} value="$image" zoom="true"/>\n'
        f"  <RectangleLabels name={quoteattr(from_name)} toName={quoteattr(to_name)}>\n"
        f"{rows}\n"
        "  </RectangleLabels>\n"
        "</View>\n"
    )


def to_region(
    box: dict[str, Any], width: int, height: int, from_name: str, to_name: str, i: int
) -> dict[str, Any]:
    """One box (record convention, pixels) as a ``rectanglelabels`` result entry."""
    x1, y1, x2, y2 = (float(v) for v in box["box"])
    region: dict[str, Any] = {
        "id": f"r{i}",
        "type": "rectanglelabels",
        "from_name": from_name,
        "to_name": to_name,
        "original_width": width,
        "original_height": height,
        "image_rotation": 0,
        "value": {
            "x": 100.0 * x1 / width,
            "y": 100.0 * y1 / height,
            "width": 100.0 * (x2 - x1) / width,
            "height": 100.0 * (y2 - y1) / height,
            "rotation": 0,
            "rectanglelabels": [box["label"]],
        },
    }
    if box.get("score") is not None:
        region["score"] = float(box["score"])
    return region


def from_region(region: dict[str, Any], width: int, height: int) -> dict[str, Any]:
    """A ``rectanglelabels`` result entry back to a pixel box (rotation must be 0)."""
    v = region.get("value") or {}
    if float(v.get("rotation", 0) or 0) != 0:
        raise InvalidInput("rotated rectangles are not supported")
    w = float(region.get("original_width") or width)
    h = float(region.get("original_height") or height)
    names = v.get("rectanglelabels") or []
    if len(names) != 1:
        raise InvalidInput(f"a rectangle needs exactly one label, got {names}")
    x, y = float(v["x"]) * w / 100.0, float(v["y"]) * h / 100.0
    return {
        "box": [x, y, x + float(v["width"]) * w / 100.0, y + float(v["height"]) * h / 100.0],
        "label": str(names[0]),
    }


def to_task(
    sample: Sample, ds: Dataset, current: Label | None, base_url: str, from_name: str, to_name: str
) -> dict[str, Any]:
    """A Label Studio task: labelled samples carry an annotation, others the prediction."""
    url = f"{base_url.rstrip('/')}/v1/samples/{sample.sha256}/image?dataset={ds.name}"
    task: dict[str, Any] = {"data": {to_name: url, "sha256": sample.sha256, "dataset": ds.name}}
    w, h = sample.width, sample.height
    if current is not None and current.state in ("labelled", "ok"):
        result = [to_region(b, w, h, from_name, to_name, i) for i, b in enumerate(current.boxes)]
        task["annotations"] = [{"result": result, "ground_truth": sample.golden}]
    elif sample.prediction:
        result = [
            to_region(b, w, h, from_name, to_name, i) for i, b in enumerate(sample.prediction)
        ]
        scores = [float(b.get("score", 0.0)) for b in sample.prediction]
        task["predictions"] = [
            {
                "model_version": sample.model_ref or "lineinspect",
                "score": min(scores) if scores else 0.0,
                "result": result,
            }
        ]
    return task


def export_tasks(
    store: Store, dataset: str, base_url: str, from_name: str, to_name: str
) -> list[Any]:
    """Every sample of ``dataset`` with pixels as a task."""
    with store.transaction() as s:
        ds = datasets.get(s, dataset)
        rows = s.scalars(
            select(Sample)
            .where(Sample.dataset_id == ds.id, Sample.pixels_deleted_at.is_(None))
            .order_by(Sample.id)
        )
        return [
            to_task(smp, ds, labels.current(s, smp), base_url, from_name, to_name) for smp in rows
        ]


def latest_annotation(task: dict[str, Any]) -> dict[str, Any] | None:
    """The newest annotation that was not cancelled (skipped)."""
    anns = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
    if not anns:
        return None
    latest: dict[str, Any] = max(
        anns, key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""), _id(a))
    )
    return latest


def _id(ann: dict[str, Any]) -> int:
    try:
        return int(ann.get("id") or 0)
    except (TypeError, ValueError):
        return 0


def parse_annotation(
    ann: dict[str, Any], width: int, height: int, from_name: str
) -> tuple[str, list[dict[str, Any]], str]:
    """``(state, boxes, origin)`` of an annotation. Origin: every region ``prediction``
    → prediction; none from a prediction → manual; otherwise prediction-changed."""
    regions = [
        r
        for r in ann.get("result") or []
        if r.get("type") == "rectanglelabels" and r.get("from_name", from_name) == from_name
    ]
    boxes = [from_region(r, width, height) for r in regions]
    origins = {str(r.get("origin") or "manual") for r in regions}
    if regions and origins == {"prediction"}:
        origin = "prediction"
    elif origins <= {"manual"} and not (ann.get("parent_prediction") and not regions):
        origin = "manual"
    else:
        origin = "prediction-changed"
    return ("labelled" if boxes else "ok"), boxes, origin


def _task_sha(task: dict[str, Any], to_name: str) -> str | None:
    data = task.get("data") or {}
    sha = data.get("sha256")
    if isinstance(sha, str) and len(sha) == 64:
        return sha
    m = _SHA_URL.search(str(data.get(to_name) or data.get("image") or ""))
    return m.group(1) if m else None


def _local_image(task: dict[str, Any], folder: Path, to_name: str) -> Path | None:
    data = task.get("data") or {}
    ref = str(data.get(to_name) or data.get("image") or "").split("?")[0]
    name = ref.rsplit("/", 1)[-1]
    for cand in (folder / name, folder / "images" / name, folder / _UPLOAD_PREFIX.sub("", name)):
        if name and cand.is_file():
            return cand
    return None


def read_export(
    root: Path, store: Store, from_name: str = "label", to_name: str = "image"
) -> Source:
    """A Label Studio JSON export (the file, or the one in the folder): images from our
    store (tasks exported by lineinspect) or files beside the JSON."""
    json_path = root if root.is_file() else next(iter(sorted(root.glob("*.json"))), None)
    if json_path is None:
        raise InvalidInput(f"{root}: no Label Studio JSON export found")
    try:
        tasks = json.loads(json_path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{json_path}: not JSON: {exc}") from exc
    if not isinstance(tasks, list):
        raise InvalidInput(f"{json_path}: a Label Studio export is a JSON list of tasks")
    folder = json_path.parent
    classes: set[str] = set()
    for t in tasks:
        for a in (t.get("annotations") or []) + (t.get("predictions") or []):
            for r in a.get("result") or []:
                classes.update((r.get("value") or {}).get("rectanglelabels") or [])

    def loader(task: dict[str, Any]) -> Any:
        def load() -> Item:
            sha = _task_sha(task, to_name)
            if sha is not None and store.blobs.exists(sha):
                data = store.blobs.read(sha)
            else:
                path = _local_image(task, folder, to_name)
                if path is None:
                    raise InvalidInput("image not found in the store or beside the export")
                data = path.read_bytes()
            width, height, _ = probe(data, store.max_pixels)
            ann = latest_annotation(task)
            if ann is None:
                return Item(data=data, source="label-studio")
            state, boxes, origin = parse_annotation(ann, width, height, from_name)
            return Item(
                data=data,
                boxes=boxes,
                state=state,
                origin=origin,
                source="label-studio",
                author=str(ann.get("completed_by") or "label-studio"),
                external_ref=f"{REF_PREFIX}{ann.get('id')}" if ann.get("id") else None,
            )

        return load

    names = [str(t.get("id", i)) for i, t in enumerate(tasks)]
    return Source(
        sorted(classes), [Candidate(n, loader(t)) for n, t in zip(names, tasks, strict=True)]
    )
