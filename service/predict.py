"""Offline prediction over files with exactly the serving pre/post-processing."""

from __future__ import annotations

import glob
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from models.processing import PostprocessConfig
from service.batcher import run_batch
from service.engine import ModelSession
from service.errors import LineInspectError
from service.inspector import prepare
from service.records import DetectionRecord, build_record

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


@dataclass(frozen=True)
class Unreadable:
    """An image ``predict`` could not inspect, and why (the run goes on without it)."""

    path: Path
    reason: str


def predict_files(
    session: ModelSession,
    paths: list[Path],
    post: PostprocessConfig,
    max_pixels: int,
    batch: int = 8,
    fail_classes: list[str] | None = None,
) -> Iterator[DetectionRecord | Unreadable]:
    """Yield one detection record per image, or :class:`Unreadable` for one that cannot be
    read or decoded.

    Timing is measured as the server measures it: ``inference`` is the batch's model run,
    ``total`` this image's read, decode and letterbox plus its batch's run and
    post-processing; ``queue`` is 0 (nothing queues offline).
    """
    spec, v = session.spec, session.version
    fails = None if fail_classes is None else tuple(fail_classes)
    for chunk in _chunks(paths, batch):
        ok, prepared, own_s = [], [], []
        for p in chunk:
            t0 = time.perf_counter()
            try:
                prepared.append(prepare(p.read_bytes(), spec.imgsz, max_pixels))
            except LineInspectError as exc:
                yield Unreadable(p, exc.message)
                continue
            except OSError as exc:
                yield Unreadable(p, exc.strerror or str(exc))
                continue
            ok.append(p)
            own_s.append(time.perf_counter() - t0)
        if not ok:
            continue
        run = run_batch(
            session,
            [t for t, _, _ in prepared],
            [i for _, i, _ in prepared],
            [s for _, _, s in prepared],
            post,
        )
        batch_s = run.input_s + run.inference_s + run.output_s
        for path, det, own in zip(ok, run.dets, own_s, strict=True):
            yield build_record(
                v,
                spec.class_names,
                det,
                fails,
                image=path.name,
                frame_id=uuid.uuid4().hex,
                line=None,
                camera=None,
                queue_s=0.0,
                inference_s=run.inference_s,
                total_s=own + batch_s,
            )
