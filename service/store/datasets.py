"""Dataset repository: fixed class lists, widened only on purpose, and counts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.errors import InvalidInput, NotFound
from service.store.schema import Dataset, Label, Sample

_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def check_name(name: str) -> str:
    """A dataset name: 1-128 letters, digits, ``-``, ``_`` or ``.``."""
    if not name or len(name) > 128 or set(name) - _NAME_CHARS:
        raise InvalidInput(f"dataset name {name!r}: use 1-128 of letters, digits, '-_.'")
    return name


def get(session: Session, name: str) -> Dataset:
    """The dataset ``name``; :class:`NotFound` when absent."""
    ds = session.scalar(select(Dataset).where(Dataset.name == name))
    if ds is None:
        raise NotFound(f"no dataset {name!r}")
    return ds


def get_or_create(
    session: Session, name: str, classes: Sequence[str] | None, val_fraction: float
) -> tuple[Dataset, bool]:
    """The dataset, created with ``classes`` when absent; returns ``(dataset, created)``."""
    ds = session.scalar(select(Dataset).where(Dataset.name == check_name(name)))
    if ds is not None:
        return ds, False
    if not classes:
        raise InvalidInput(f"dataset {name!r} does not exist; creating it needs a class list")
    if len(set(classes)) != len(classes):
        raise InvalidInput(f"duplicate class names in {list(classes)}")
    ds = Dataset(name=name, classes=list(classes), val_fraction=val_fraction, golden_frozen=False)
    session.add(ds)
    session.flush()
    return ds, True


def widen(ds: Dataset, names: Sequence[str], allow: bool) -> None:
    """Append unknown ``names`` to the class list when ``allow``; else refuse, listing
    the known classes. Existing class ids never change."""
    unknown = [n for n in dict.fromkeys(names) if n not in ds.classes]
    if not unknown:
        return
    if not allow:
        raise InvalidInput(
            f"unknown class(es) {unknown} for dataset {ds.name!r}; known classes: "
            f"{list(ds.classes)} (use --add-classes / add_classes=true to widen the list)"
        )
    ds.classes = [*ds.classes, *unknown]


def list_all(session: Session) -> list[Dataset]:
    """Every dataset, by name."""
    return list(session.scalars(select(Dataset).order_by(Dataset.name)))


def counts(session: Session, ds: Dataset) -> dict[str, Any]:
    """Samples per state, split and golden, and boxes per class (current labels)."""
    rows = session.execute(
        select(Sample.state, Sample.split, Sample.golden, func.count())
        .where(Sample.dataset_id == ds.id)
        .group_by(Sample.state, Sample.split, Sample.golden)
    ).all()
    by_state: dict[str, int] = {}
    by_split: dict[str, int] = {"train": 0, "val": 0, "golden": 0}
    total = 0
    for state, split, golden, n in rows:
        by_state[state] = by_state.get(state, 0) + n
        by_split["golden" if golden else split] += n
        total += n
    per_class: dict[str, dict[str, int]] = {c: {"boxes": 0, "images": 0} for c in ds.classes}
    current = session.execute(
        select(Label.boxes)
        .join(Sample, (Label.sample_id == Sample.id) & (Label.version == Sample.label_version))
        .where(Sample.dataset_id == ds.id, Sample.state == "labelled")
    ).scalars()
    for boxes in current:
        seen: set[str] = set()
        for b in boxes:
            entry = per_class.setdefault(b["label"], {"boxes": 0, "images": 0})
            entry["boxes"] += 1
            seen.add(b["label"])
        for name in seen:
            per_class[name]["images"] += 1
    return {
        "name": ds.name,
        "classes": list(ds.classes),
        "samples": total,
        "states": by_state,
        "splits": by_split,
        "per_class": per_class,
        "val_fraction": ds.val_fraction,
    }
