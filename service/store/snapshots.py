"""Immutable snapshots: a manifest of (sample, label version, role) with a fingerprint,
materialised as a YOLO-layout folder whose ``data.yaml`` ``lineinspect train``/``distil``
read unchanged.

``fingerprint`` hashes the content only (class list; per sample its sha256, role and
current boxes to 1e-3 px), so the same samples and labels give the same fingerprint in
any store, and one changed label gives another. ``train_fingerprint`` is
:func:`models.data.fingerprint` of the materialised train split: the ``data_fingerprint``
that ``lineinspect train`` writes into the model card, so a model names its snapshot.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.data.fingerprint import fingerprint as samples_fingerprint
from models.data.formats import read_yolo, write_yolo
from models.data.sample import Sample as TrainSample
from service.errors import InvalidInput, NotFound
from service.store.blobs import BlobStore
from service.store.schema import Dataset, Label, Sample, Snapshot, SnapshotItem

ROLES = ("train", "val", "golden")
EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/bmp": ".bmp", "image/tiff": ".tif"}


@dataclass(frozen=True)
class Entry:
    """One sample of a manifest."""

    sample: Sample
    label: Label
    role: str

    @property
    def file_name(self) -> str:
        return self.sample.sha256 + EXTENSIONS[self.sample.media_type]


def manifest(session: Session, ds: Dataset) -> list[Entry]:
    """Every trainable sample (labelled or ok, pixels kept) with its current label."""
    rows = session.execute(
        select(Sample, Label)
        .join(Label, (Label.sample_id == Sample.id) & (Label.version == Sample.label_version))
        .where(
            Sample.dataset_id == ds.id,
            Sample.state.in_(("labelled", "ok")),
            Sample.pixels_deleted_at.is_(None),
        )
        .order_by(Sample.sha256)
    ).all()
    return [Entry(s, lab, "golden" if s.golden else s.split) for s, lab in rows]


def content_fingerprint(classes: list[str], entries: list[Entry]) -> str:
    """sha256 over the class list and each entry's sha256, role and boxes (1e-3 px)."""
    h = hashlib.sha256(json.dumps(classes).encode())
    for e in sorted(entries, key=lambda e: e.sample.sha256):
        boxes = sorted((b["label"], [round(float(v), 3) for v in b["box"]]) for b in e.label.boxes)
        h.update(b"\0" + json.dumps([e.sample.sha256, e.role, boxes]).encode())
    return h.hexdigest()


def _train_samples(classes: list[str], entries: list[Entry], image_dir: Path) -> list[TrainSample]:
    index = {c: i for i, c in enumerate(classes)}
    return [
        TrainSample(
            image_dir / e.file_name,
            e.sample.width,
            e.sample.height,
            np.asarray([b["box"] for b in e.label.boxes], np.float32).reshape(-1, 4),
            np.asarray([index[b["label"]] for b in e.label.boxes], np.int64),
        )
        for e in entries
    ]


def link_file(src: Path, dst: Path) -> None:
    """Hard-link ``src`` to ``dst`` (a copy across file systems)."""
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links unsupported
        shutil.copyfile(src, dst)


def materialise(
    blobs: BlobStore, classes: list[str], entries: list[Entry], out: Path, meta: dict[str, Any]
) -> Path:
    """Write the YOLO folder (images hard-linked from the blobs) atomically to ``out``;
    returns its ``data.yaml``."""
    out = Path(out)
    if out.exists():
        raise InvalidInput(f"{out} already exists")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".snapshot-", dir=out.parent))
    try:
        for role in ROLES:
            img_dir = tmp / "images" / role
            img_dir.mkdir(parents=True)
            chosen = [e for e in entries if e.role == role]
            for e in chosen:
                link_file(blobs.path(e.sample.sha256), img_dir / e.file_name)
            write_yolo(_train_samples(classes, chosen, img_dir), tmp, role, classes)
        data = {
            "path": ".",
            "train": "images/train",
            "val": "images/val",
            "golden": "images/golden",
            "names": list(classes),
            "nc": len(classes),
            "format": "yolo",
            "lineinspect_snapshot": meta,
        }
        (tmp / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out / "data.yaml"


def train_fingerprint(folder: Path, classes: list[str]) -> str:
    """The ``data_fingerprint`` ``lineinspect train`` computes for this folder."""
    return samples_fingerprint(read_yolo(folder / "images" / "train", num_classes=len(classes)))


def create(
    session: Session, blobs: BlobStore, ds: Dataset, snapshots_root: Path
) -> tuple[Snapshot, Path, bool]:
    """Snapshot ``ds`` (or return the existing one with the same fingerprint); the
    folder is ``snapshots_root/<dataset>/<fingerprint[:16]>``. Returns
    ``(snapshot, data.yaml, created)``; the caller commits."""
    entries = manifest(session, ds)
    if not entries:
        raise InvalidInput(f"dataset {ds.name!r} has no labelled samples to snapshot")
    classes = list(ds.classes)
    fp = content_fingerprint(classes, entries)
    folder = Path(snapshots_root) / ds.name / fp[:16]
    existing = session.scalar(
        select(Snapshot).where(Snapshot.dataset_id == ds.id, Snapshot.fingerprint == fp)
    )
    meta = {"dataset": ds.name, "fingerprint": fp}
    if not folder.exists():
        materialise(blobs, classes, entries, folder, meta)
    if existing is not None:
        return existing, folder / "data.yaml", False
    counts = {r: sum(1 for e in entries if e.role == r) for r in ROLES}
    snap = Snapshot(
        dataset_id=ds.id,
        fingerprint=fp,
        train_fingerprint=train_fingerprint(folder, classes),
        classes=classes,
        counts=counts,
    )
    session.add(snap)
    session.flush()
    session.add_all(
        SnapshotItem(snapshot_id=snap.id, sample_id=e.sample.id, label_id=e.label.id, role=e.role)
        for e in entries
    )
    return snap, folder / "data.yaml", True


def get(session: Session, ds: Dataset, fingerprint: str) -> Snapshot:
    """A snapshot of ``ds`` by (a prefix of) its fingerprint."""
    snap = session.scalar(
        select(Snapshot).where(
            Snapshot.dataset_id == ds.id, Snapshot.fingerprint.startswith(fingerprint)
        )
    )
    if snap is None:
        raise NotFound(f"no snapshot {fingerprint!r} of dataset {ds.name!r}")
    return snap


def list_for(session: Session, ds: Dataset) -> list[Snapshot]:
    """The snapshots of ``ds``, oldest first."""
    return list(
        session.scalars(select(Snapshot).where(Snapshot.dataset_id == ds.id).order_by(Snapshot.id))
    )


def latest(session: Session, ds: Dataset) -> Snapshot | None:
    """The newest snapshot of ``ds``, or None."""
    stmt = select(Snapshot).where(Snapshot.dataset_id == ds.id).order_by(Snapshot.id.desc())
    return session.scalars(stmt.limit(1)).first()


def current_fingerprint(session: Session, ds: Dataset) -> str:
    """The fingerprint a snapshot of ``ds`` taken now would have (nothing is written)."""
    entries = manifest(session, ds)
    if not entries:
        raise InvalidInput(f"dataset {ds.name!r} has no labelled samples to snapshot")
    return content_fingerprint(list(ds.classes), entries)


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)  # SQLite keeps no zone


@dataclass(frozen=True)
class NewLabels:
    """Trainable samples (not golden) whose current label is newer than the last snapshot:
    how many, how many contain each class, and when the newest label came."""

    count: int
    per_class: dict[str, int] = field(default_factory=dict)
    newest: datetime | None = None
    since: datetime | None = None


def new_labels(session: Session, ds: Dataset) -> NewLabels:
    """What a trigger counts (see :class:`NewLabels`)."""
    last = latest(session, ds)
    since = last.created_at if last is not None else None
    stmt = (
        select(Label.boxes, Label.created_at)
        .join(Sample, (Label.sample_id == Sample.id) & (Label.version == Sample.label_version))
        .where(
            Sample.dataset_id == ds.id,
            Sample.state.in_(("labelled", "ok")),
            Sample.golden.is_(False),
            Sample.pixels_deleted_at.is_(None),
        )
    )
    if since is not None:
        stmt = stmt.where(Label.created_at > since)
    per_class = dict.fromkeys(ds.classes, 0)
    count, newest = 0, None
    for boxes, created in session.execute(stmt):
        count += 1
        for name in {b["label"] for b in boxes}:
            per_class[name] = per_class.get(name, 0) + 1
        newest = created if newest is None else max(newest, created)
    return NewLabels(
        count,
        per_class,
        None if newest is None else _aware(newest),
        None if since is None else _aware(since),
    )
