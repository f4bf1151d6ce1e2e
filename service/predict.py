"""Offline prediction over files with exactly the serving pre/post-processing."""

from __future__ import annotations

import glob
import uuid
from collections.abc import Iterator
from pathlib import Path

from models.processing import batch_inputs, postprocess, verdict
from service.batcher import PostprocessConfig
from service.engine import ModelSession
from service.inspector import fail_class_ids, prepare
from service.records import DetectionRecord, ModelInfo, Timing, detections_to_list

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"})


def expand_source(source: str) -> list[Path]:
    """An image file, a directory (its images, sorted) or a glob pattern → image paths."""
    path = Path(source)
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if path.is_file():
        return [path]
    matches = sorted(Path(p) for p in glob.glob(source, recursive=True))
    return [p for p in matches if p.suffix.lower() in IMAGE_SUFFIXES]


def _chunks(paths: list[Path], n: int) -> Iterator[list[Path]]:
    for i in range(0, len(paths), n):
        yield paths[i : i + n]


def predict_files(
    session: ModelSession, paths: list[Path], post: PostprocessConfig, max_pixels: int,
    batch: int = 8, fail_classes: list[str] | None = None,
) -> Iterator[DetectionRecord]:  # fmt: skip
    """Yield one detection record per image (raises on an unreadable image)."""
    spec, v = session.spec, session.version
    fail_ids = fail_class_ids(
        spec.class_names, None if fail_classes is None else tuple(fail_classes)
    )
    for chunk in _chunks(paths, batch):
        prepared = [prepare(p.read_bytes(), spec.imgsz, max_pixels) for p in chunk]
        raw = session.run(batch_inputs([t for t, _, _ in prepared]))
        dets = postprocess(
            raw, spec, [i for _, i, _ in prepared], [s for _, _, s in prepared],
            post.conf_thr, post.iou_thr, post.max_det,
        )  # fmt: skip
        for path, det in zip(chunk, dets, strict=True):
            yield DetectionRecord(
                image=path.name, frame_id=uuid.uuid4().hex, line=None, camera=None,
                model=ModelInfo(name=v.name, version=v.version, role=v.role),
                verdict=verdict(det, fail_ids),
                detections=detections_to_list(det, spec.class_names),
                timing_ms=Timing(queue=0.0, inference=0.0, total=0.0),
            )  # fmt: skip
