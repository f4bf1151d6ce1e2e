"""Sample repository: look-ups by sha256 and the paged, filtered listing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.errors import Conflict, InvalidInput, NotFound
from service.store.blobs import is_sha256
from service.store.schema import STATES, Dataset, Sample

MAX_PAGE = 500


def find(session: Session, dataset: Dataset, sha256: str) -> Sample | None:
    """The sample of ``sha256`` in ``dataset``, or None."""
    return session.scalar(
        select(Sample).where(Sample.dataset_id == dataset.id, Sample.sha256 == sha256)
    )


def get(session: Session, sha256: str, dataset: Dataset | None = None) -> Sample:
    """The sample of ``sha256`` (in ``dataset`` when given). :class:`NotFound` when
    absent; :class:`Conflict` when the image is in several datasets and none was named."""
    if not is_sha256(sha256):
        raise InvalidInput(f"not a sha256: {sha256!r}")
    query = select(Sample).where(Sample.sha256 == sha256)
    if dataset is not None:
        query = query.where(Sample.dataset_id == dataset.id)
    found = list(session.scalars(query.limit(2)))
    if not found:
        where = f" in dataset {dataset.name!r}" if dataset is not None else ""
        raise NotFound(f"no sample {sha256}{where}")
    if len(found) > 1:
        raise Conflict(f"sample {sha256} is in several datasets; name one with ?dataset=")
    return found[0]


def page(
    session: Session,
    dataset: Dataset | None,
    state: str | None = None,
    sampler: str | None = None,
    line: str | None = None,
    offset: int = 0,
    limit: int = 100,
) -> tuple[list[Sample], int]:
    """One page of samples (newest first) and the total matching the filters."""
    if state is not None and state not in STATES:
        raise InvalidInput(f"state must be one of {list(STATES)}, got {state!r}")
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise InvalidInput(f"limit must be 1..{MAX_PAGE} and offset >= 0")
    conds: list[Any] = []
    if dataset is not None:
        conds.append(Sample.dataset_id == dataset.id)
    if state is not None:
        conds.append(Sample.state == state)
    if sampler is not None:
        conds.append(Sample.sampler == sampler)
    if line is not None:
        conds.append(Sample.line == line)
    total = session.scalar(select(func.count()).select_from(Sample).where(*conds)) or 0
    rows = session.scalars(
        select(Sample).where(*conds).order_by(Sample.id.desc()).offset(offset).limit(limit)
    )
    return list(rows), int(total)


def summary(sample: Sample, dataset_name: str) -> dict[str, Any]:
    """The JSON view of a sample (without its label history)."""
    return {
        "sha256": sample.sha256,
        "dataset": dataset_name,
        "width": sample.width,
        "height": sample.height,
        "media_type": sample.media_type,
        "source": sample.source,
        "line": sample.line,
        "camera": sample.camera,
        "frame_id": sample.frame_id,
        "taken_at": sample.taken_at.isoformat(),
        "model_ref": sample.model_ref,
        "prediction": sample.prediction,
        "sampler": sample.sampler,
        "state": sample.state,
        "split": sample.split,
        "golden": sample.golden,
        "label_version": sample.label_version,
        "has_pixels": sample.pixels_deleted_at is None,
    }
