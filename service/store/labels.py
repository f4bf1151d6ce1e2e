"""Label repository: validated boxes, one new version per change, the full history kept.

A label version is ``boxes`` (the record convention, ``{"box": [x1,y1,x2,y2], "label"}``
in pixels) plus the ``state`` it gives the sample: ``labelled`` (boxes), ``ok`` (no
defect), ``rejected`` (unusable) or ``unlabelled`` (labels withdrawn).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.errors import InvalidInput
from service.store.schema import ORIGINS, Label, Sample

#: Overshoot of the image border tolerated (and clipped away), in pixels: the rounding of
#: tools that store boxes in percent of the image.
BORDER_TOLERANCE_PX = 0.5


def validate_boxes(
    boxes: Sequence[Any], classes: Sequence[str], width: int, height: int
) -> list[dict[str, Any]]:
    """Check and normalise boxes; raises :class:`InvalidInput` naming the first bad one.

    Each must be a mapping with ``box`` (4 finite numbers, inside the image within
    :data:`BORDER_TOLERANCE_PX`, positive width and height) and a known ``label``.
    """
    out: list[dict[str, Any]] = []
    known = set(classes)
    for i, raw in enumerate(boxes):
        if not isinstance(raw, dict) or "box" not in raw or "label" not in raw:
            raise InvalidInput(f"box {i}: expected {{'box': [x1, y1, x2, y2], 'label': name}}")
        coords = raw["box"]
        if not isinstance(coords, list | tuple) or len(coords) != 4:
            raise InvalidInput(f"box {i}: 'box' must be 4 numbers [x1, y1, x2, y2]")
        try:
            x1, y1, x2, y2 = (float(v) for v in coords)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"box {i}: 'box' must be 4 numbers") from exc
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
            raise InvalidInput(f"box {i}: coordinates must be finite")
        tol = BORDER_TOLERANCE_PX
        if x1 < -tol or y1 < -tol or x2 > width + tol or y2 > height + tol:
            raise InvalidInput(f"box {i}: {coords} is outside the {width}x{height} image")
        x1, y1 = max(x1, 0.0), max(y1, 0.0)
        x2, y2 = min(x2, float(width)), min(y2, float(height))
        if x2 <= x1 or y2 <= y1:
            raise InvalidInput(f"box {i}: {coords} has zero or negative size")
        label = str(raw["label"])
        if label not in known:
            raise InvalidInput(f"box {i}: unknown class {label!r}; known classes: {list(classes)}")
        entry: dict[str, Any] = {"box": [x1, y1, x2, y2], "label": label}
        if raw.get("score") is not None:
            entry["score"] = float(raw["score"])
        out.append(entry)
    return out


def _canonical(boxes: Sequence[dict[str, Any]]) -> list[tuple[str, tuple[float, ...]]]:
    return sorted((b["label"], tuple(round(float(v), 3) for v in b["box"])) for b in boxes)


def current(session: Session, sample: Sample) -> Label | None:
    """The sample's current label version (None when never labelled)."""
    if sample.label_version == 0:
        return None
    return session.scalar(
        select(Label).where(Label.sample_id == sample.id, Label.version == sample.label_version)
    )


def history(session: Session, sample: Sample) -> list[Label]:
    """Every label version of the sample, oldest first."""
    return list(
        session.scalars(select(Label).where(Label.sample_id == sample.id).order_by(Label.version))
    )


def apply(
    session: Session,
    sample: Sample,
    state: str,
    boxes: Sequence[dict[str, Any]],
    author: str,
    origin: str,
    external_ref: str | None = None,
) -> bool:
    """Record a new label version unless it equals the current one; returns whether it
    changed anything. ``boxes`` must already be validated (:func:`validate_boxes`)."""
    if origin not in ORIGINS:
        raise InvalidInput(f"label origin must be one of {list(ORIGINS)}, got {origin!r}")
    if state == "labelled" and not boxes:
        state = "ok"  # a labelled image without a box says "no defect"
    if state != "labelled" and boxes:
        raise InvalidInput(f"a sample marked {state!r} carries no boxes")
    now = current(session, sample)
    if now is not None and now.state == state and _canonical(now.boxes) == _canonical(boxes):
        return False
    if now is None and state == "unlabelled":
        return False
    version = sample.label_version + 1
    session.add(
        Label(
            sample_id=sample.id,
            version=version,
            state=state,
            boxes=list(boxes),
            author=author,
            origin=origin,
            external_ref=external_ref,
        )
    )
    sample.label_version = version
    sample.state = state
    return True
