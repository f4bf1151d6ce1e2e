"""Sample repository: look-ups by sha256 and the paged, filtered listing."""

from __future__ import annotations

import math
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


#: Orders of :func:`page`: ``newest`` (insertion, newest first) or ``uncertain`` (the
#: frame holding the least confident predicted detection first; see :func:`uncertainty`).
ORDERS = ("newest", "uncertain")


def uncertainty(prediction: list[Any] | None) -> float:
    """Sort key of the ``uncertain`` order: the lowest score among the predicted
    detections (each was kept above its served threshold, so the lowest is the one nearest
    it); a frame without detections sorts last (``inf``)."""
    scores = [float(d["score"]) for d in prediction or () if isinstance(d, dict) and "score" in d]
    return min(scores) if scores else math.inf


def page(
    session: Session,
    dataset: Dataset | None,
    state: str | None = None,
    sampler: str | None = None,
    line: str | None = None,
    offset: int = 0,
    limit: int = 100,
    *,
    camera: str | None = None,
    predicted_class: str | None = None,
    order: str = "newest",
) -> tuple[list[Sample], int]:
    """One page of samples and the total matching the filters. ``predicted_class`` is the
    majority class of the prediction a capture was kept with. ``uncertain`` sorts every
    matching row in Python (its key is in the prediction's JSON): meant for the review
    queue, which capture quotas bound."""
    if state is not None and state not in STATES:
        raise InvalidInput(f"state must be one of {list(STATES)}, got {state!r}")
    if order not in ORDERS:
        raise InvalidInput(f"order must be one of {list(ORDERS)}, got {order!r}")
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise InvalidInput(f"limit must be 1..{MAX_PAGE} and offset >= 0")
    wanted = (
        (Sample.state, state),
        (Sample.sampler, sampler),
        (Sample.line, line),
        (Sample.camera, camera),
        (Sample.capture_class, predicted_class),
    )
    conds: list[Any] = [col == value for col, value in wanted if value is not None]
    if dataset is not None:
        conds.append(Sample.dataset_id == dataset.id)
    total = session.scalar(select(func.count()).select_from(Sample).where(*conds)) or 0
    if order == "uncertain":
        scored = session.execute(select(Sample.id, Sample.prediction).where(*conds)).all()
        keyed = sorted(scored, key=lambda r: (uncertainty(r.prediction), -r.id))
        ids = [r.id for r in keyed[offset : offset + limit]]
        found = {r.id: r for r in session.scalars(select(Sample).where(Sample.id.in_(ids)))}
        return [found[i] for i in ids], int(total)
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
        "predicted_class": sample.capture_class,
        "state": sample.state,
        "split": sample.split,
        "golden": sample.golden,
        "label_version": sample.label_version,
        "has_pixels": sample.pixels_deleted_at is None,
    }
