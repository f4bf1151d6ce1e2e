"""An answered frame as it waits for the writer (:class:`Entry`), and as a row.

Everything that costs more than a reference copy (the image's sha256, the counts, the
thresholds' card look-up) happens in :func:`row_values`, in the writer thread, never on
the event loop.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from service.audit.schema import ID_CHARS, LABEL_CHARS, NAME_CHARS, AuditRow
from service.records import DetectionRecord
from service.thresholds import ServedThresholds


@dataclass(slots=True)
class Entry:
    """One answered frame: when, the bytes as received, the record, the edge."""

    time: float  # epoch seconds (time.time()) of the answer
    data: bytes
    record: DetectionRecord
    edge: str | None


def _cut(value: str | None, n: int) -> str | None:
    return None if value is None else value[:n]


def row_values(entry: Entry, thresholds: ServedThresholds) -> dict[str, Any]:
    """The column values of ``entry``'s row (hashes the image; reads the model's card
    the first time a version is seen)."""
    rec = entry.record
    try:
        served, _ = thresholds.of(rec.model.name, rec.model.version)
    except Exception:  # a version gone from the registry: the row still says what answered
        served = {}
    counts = Counter(d.label for d in rec.detections)
    return {
        "frame_id": rec.frame_id[:ID_CHARS],
        "time": datetime.fromtimestamp(entry.time, UTC),
        "edge": entry.edge,
        "line": _cut(rec.line, LABEL_CHARS),
        "camera": _cut(rec.camera, LABEL_CHARS),
        # None: the frame came as a preprocessed tensor (KServe FP32), no image bytes
        "image_sha256": hashlib.sha256(entry.data).hexdigest() if entry.data else None,
        "model_name": rec.model.name[:NAME_CHARS],
        "model_version": rec.model.version,
        "thresholds": served,
        "verdict": rec.verdict,
        "counts": dict(counts),
        "max_score": max((d.score for d in rec.detections), default=None),
    }


def to_json(row: AuditRow) -> dict[str, Any]:
    """The row as the API and the CLI give it (docs/audit.md)."""
    return {
        "frame_id": row.frame_id,
        "time": row.time.isoformat(),
        "edge": row.edge,
        "line": row.line,
        "camera": row.camera,
        "image_sha256": row.image_sha256,
        "model": {"name": row.model_name, "version": row.model_version},
        "thresholds": row.thresholds,
        "verdict": row.verdict,
        "counts": row.counts,
        "max_score": row.max_score,
    }
