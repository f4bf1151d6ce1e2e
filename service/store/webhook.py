"""Label Studio webhook events applied to the store, idempotently: an event applied
twice (Label Studio retries) leaves the store as applying it once did."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from service.errors import InvalidInput
from service.store import datasets, labels, samples
from service.store.labelstudio import REF_PREFIX, _task_sha, parse_annotation
from service.store.schema import Dataset, Label, Sample
from service.store.store import Store

UPSERT = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED")
DELETE = "ANNOTATIONS_DELETED"


def apply_event(
    store: Store, payload: dict[str, Any], from_name: str = "label", to_name: str = "image"
) -> dict[str, Any]:
    """Apply one webhook payload; returns ``{"action", "changed"}``. Actions other
    than annotation created/updated/deleted are acknowledged and ignored."""
    action = str(payload.get("action") or "")
    if action in UPSERT:
        return {"action": action, "changed": _upsert(store, payload, from_name, to_name)}
    if action == DELETE:
        return {"action": action, "changed": _delete(store, payload)}
    return {"action": action, "changed": 0, "ignored": True}


def _upsert(store: Store, payload: dict[str, Any], from_name: str, to_name: str) -> int:
    ann, task = payload.get("annotation"), payload.get("task")
    if not isinstance(ann, dict) or not isinstance(task, dict):
        raise InvalidInput(f"{payload.get('action')} needs 'annotation' and 'task' objects")
    sha = _task_sha(task, to_name)
    if sha is None:
        raise InvalidInput("the task names no lineinspect sample (data.sha256 or image URL)")
    if ann.get("was_cancelled"):
        return 0
    with store.transaction() as s:
        ds_name = (task.get("data") or {}).get("dataset")
        ds = datasets.get(s, str(ds_name)) if ds_name else None
        sample = samples.get(s, sha, ds)
        state, boxes, origin = parse_annotation(ann, sample.width, sample.height, from_name)
        dataset = ds or s.get_one(Dataset, sample.dataset_id)
        valid = labels.validate_boxes(boxes, dataset.classes, sample.width, sample.height)
        author = str(ann.get("completed_by") or "label-studio")
        ref = f"{REF_PREFIX}{ann.get('id')}" if ann.get("id") is not None else None
        return int(labels.apply(s, sample, state, valid, author, origin, ref))


def _delete(store: Store, payload: dict[str, Any]) -> int:
    items = payload.get("annotations")
    if not isinstance(items, list):
        raise InvalidInput("ANNOTATIONS_DELETED needs an 'annotations' list")
    ids = [a.get("id") if isinstance(a, dict) else a for a in items]
    refs = [f"{REF_PREFIX}{i}" for i in ids if isinstance(i, int | str)]
    changed = 0
    with store.transaction() as s:
        rows = s.execute(
            select(Sample, Label)
            .join(Label, (Label.sample_id == Sample.id) & (Label.version == Sample.label_version))
            .where(Label.external_ref.in_(refs))
        ).all()
        for sample, current in rows:
            changed += labels.apply(
                s,
                sample,
                "unlabelled",
                [],
                "label-studio",
                "manual",
                f"{current.external_ref}:deleted",
            )
    return changed
