"""Training-data fingerprint for the model card."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from models.data.sample import Sample


def _canonical(s: Sample) -> str:
    rows = [
        f"{int(c)} {b[0]:.3f} {b[1]:.3f} {b[2]:.3f} {b[3]:.3f}"
        for b, c in zip(s.boxes.tolist(), s.labels.tolist(), strict=True)
    ]
    return "\n".join([f"{s.image_path.name} {s.width}x{s.height}", *sorted(rows)])


def fingerprint(samples: Sequence[Sample]) -> str:
    """sha256 hex digest over the sorted image file names and their labels.

    Labels enter in a canonical, layout-independent form (class id and xyxy pixels to
    1e-3, rows sorted), so the same data read from YOLO, VOC or COCO, in any order and
    from any directory, has the same fingerprint. Image pixels are not hashed.
    """
    h = hashlib.sha256()
    for text in sorted(_canonical(s) for s in samples):
        h.update(text.encode())
        h.update(b"\0")
    return h.hexdigest()
