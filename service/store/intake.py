"""Taking one image (and maybe its labels) into a dataset, all or nothing.

The image is validated (decoded in full, so a truncated file is refused), its blob
written atomically, then the sample row and its label version commit in one
transaction. A failed commit leaves at most an unreferenced blob, which the next
identical write re-uses (service/store/blobs.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.orm import Session

from models.processing import ProcessingError, decode_image, probe_image
from service.errors import InvalidImage, InvalidInput
from service.store import datasets, labels, samples
from service.store.blobs import BlobStore, sha256_of
from service.store.schema import SOURCES, Dataset, Sample
from service.store.splits import split_of

Outcome = Literal["added", "duplicate", "relabelled"]

MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "BMP": "image/bmp", "TIFF": "image/tiff"}


@dataclass
class Item:
    """One image to take in. ``state``: None (no label information), ``labelled``
    (``boxes``, names of the dataset's classes), ``ok`` or ``rejected``."""

    data: bytes
    boxes: Sequence[dict[str, Any]] = ()
    state: str | None = None
    source: str = "import"
    origin: str = "manual"
    author: str = "import"
    name: str | None = None
    line: str | None = None
    camera: str | None = None
    frame_id: str | None = None
    taken_at: datetime | None = None
    model_ref: str | None = None
    prediction: list[Any] | None = None
    record: dict[str, Any] | None = None
    sampler: str | None = None
    golden: bool = False
    external_ref: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def probe(data: bytes, max_pixels: int) -> tuple[int, int, str]:
    """``(width, height, media_type)`` of a fully decodable image; :class:`InvalidImage`."""
    try:
        img, width, height = probe_image(data, max_pixels)
        media_type = MEDIA_TYPES[str(img.format)]
        decode_image(data, max_pixels)
    except (ProcessingError, KeyError) as exc:
        raise InvalidImage(f"not a usable image: {exc}") from exc
    return width, height, media_type


def take(
    session: Session,
    blobs: BlobStore,
    ds: Dataset,
    item: Item,
    max_pixels: int,
    add_classes: bool = False,
) -> tuple[Sample, Outcome]:
    """Validate and stage one item in ``session`` (the caller commits). Raises
    :class:`InvalidInput` (nothing staged) for a bad image, box or class."""
    if item.source not in SOURCES:
        raise InvalidInput(f"source must be one of {list(SOURCES)}")
    width, height, media_type = probe(item.data, max_pixels)
    if item.state == "labelled":
        datasets.widen(ds, [str(b.get("label")) for b in item.boxes], add_classes)
        boxes = labels.validate_boxes(item.boxes, ds.classes, width, height)
    elif item.boxes:
        raise InvalidInput(f"boxes given for a sample marked {item.state!r}")
    else:
        boxes = []
    sha = sha256_of(item.data)
    existing = samples.find(session, ds, sha)
    if existing is not None:
        if item.state is None:
            return existing, "duplicate"
        changed = labels.apply(
            session, existing, item.state, boxes, item.author, item.origin, item.external_ref
        )
        return existing, "relabelled" if changed else "duplicate"
    blobs.put(item.data)
    sample = Sample(
        dataset_id=ds.id,
        sha256=sha,
        width=width,
        height=height,
        size_bytes=len(item.data),
        media_type=media_type,
        original_name=item.name,
        source=item.source,
        line=item.line,
        camera=item.camera,
        frame_id=item.frame_id,
        model_ref=item.model_ref,
        prediction=item.prediction,
        record=item.record,
        sampler=item.sampler,
        state="unlabelled",
        split=split_of(sha, ds.val_fraction),
        golden=item.golden,
        label_version=0,
    )
    if item.taken_at is not None:
        sample.taken_at = item.taken_at
    session.add(sample)
    session.flush()
    if item.state is not None:
        labels.apply(
            session, sample, item.state, boxes, item.author, item.origin, item.external_ref
        )
    return sample, "added"
