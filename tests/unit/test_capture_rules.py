"""Capture sampling rules and the writer's quotas, disk floor and dedupe, without a
server: each rule keeps exactly the frames it should."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from service.capture.samplers import keeps
from service.capture.spec import SamplerSpec
from service.capture.writer import Job, Quotas, Writer
from service.metrics import Metrics
from service.records import DetectionRecord
from service.store import Store
from tests.support.datasets import png

THR = {"scratch": 0.5, "dent": 0.3}


def rec(*dets: tuple[str, float], line: str = "L1", model: str = "tiny") -> DetectionRecord:
    return DetectionRecord.model_validate(
        {
            "frame_id": "f",
            "line": line,
            "verdict": "fail" if dets else "pass",
            "model": {"name": model, "version": 1, "role": "student"},
            "detections": [{"box": [1, 1, 9, 9], "label": n, "score": s} for n, s in dets],
            "timing_ms": {"queue": 0, "inference": 0, "total": 0},
        }
    )


def spec(**kw: Any) -> SamplerSpec:
    return SamplerSpec.model_validate({"name": "s", **kw})


def never() -> float:
    raise AssertionError("only the random rule draws")


def test_near_threshold_uses_each_class_threshold() -> None:
    s = spec(kind="near_threshold", epsilon=0.05)
    assert keeps(s, rec(("scratch", 0.54)), THR, never)
    assert keeps(s, rec(("dent", 0.26)), THR, never)
    assert not keeps(s, rec(("scratch", 0.56), ("dent", 0.40)), THR, never)
    assert not keeps(s, rec(), THR, never)


def test_counts_classes_models_and_lines() -> None:
    assert keeps(
        spec(kind="detections_count", more_than=1), rec(("dent", 0.9), ("dent", 0.8)), THR, never
    )
    assert not keeps(spec(kind="detections_count", more_than=2), rec(("dent", 0.9)), THR, never)
    assert keeps(spec(kind="detections_count", fewer_than=1), rec(), THR, never)
    assert keeps(
        spec(kind="classes", classes=["dent"]), rec(("scratch", 0.9), ("dent", 0.4)), THR, never
    )
    assert not keeps(spec(kind="classes", classes=["dent"]), rec(("scratch", 0.9)), THR, never)
    only_l2 = spec(kind="detections_count", fewer_than=1, lines=["L2"])
    assert not keeps(only_l2, rec(), THR, never) and keeps(only_l2, rec(line="L2"), THR, never)
    other_model = spec(kind="detections_count", fewer_than=1, models=["big"])
    assert not keeps(other_model, rec(), THR, never)
    for kind in ("flagged", "disagreement"):
        assert not keeps(spec(kind=kind), rec(("dent", 0.3)), THR, never)


def test_random_keeps_exactly_the_draws_below_its_fraction() -> None:
    draws = random.Random(7)
    values = [draws.random() for _ in range(10_000)]
    it = iter(values)
    s = spec(kind="random", fraction=0.05)
    kept = sum(keeps(s, rec(), THR, lambda: next(it)) for _ in values)
    assert kept == sum(v < 0.05 for v in values) and 400 < kept < 600


def test_incomplete_rules_are_refused() -> None:
    with pytest.raises(ValidationError, match="more_than or fewer_than"):
        spec(kind="detections_count")
    with pytest.raises(ValidationError, match="needs a 'classes' list"):
        spec(kind="classes")
    with pytest.raises(ValidationError):
        spec(kind="sometimes")


def _write(tmp_path: Path, quotas: Quotas, records: list[DetectionRecord]) -> dict[str, float]:
    metrics = Metrics()
    store = Store(tmp_path / "data")
    writer = Writer(store, metrics, quotas, size=64)
    writer.start()
    now = datetime.now(UTC)
    for i, r in enumerate(records):
        writer.submit(Job("s", "d", png(i % 6), r, ("scratch", "dent"), now))
    writer.drain()
    writer.stop()
    store.close()
    out = {"captured": metrics.captured.labels("s")._value.get()}
    for reason in ("quota_class", "quota_dataset", "disk_full", "duplicate"):
        out[reason] = metrics.capture_dropped.labels("s", reason)._value.get()
    return out


def test_writer_class_and_dataset_quotas_dedupe_and_disk_floor(tmp_path: Path) -> None:
    records = [rec(("scratch", 0.9))] * 3 + [rec(("dent", 0.9))] * 3 + [rec(("dent", 0.9))]
    got = _write(tmp_path / "a", Quotas(class_images=2), records)
    # 6 distinct images (the 7th repeats the first), 2 per predicted class
    assert got == {
        "captured": 4,
        "quota_class": 2,
        "quota_dataset": 0,
        "disk_full": 0,
        "duplicate": 1,
    }
    got = _write(tmp_path / "b", Quotas(dataset_images=3), records[:6])
    assert got["captured"] == 3 and got["quota_dataset"] == 3
    got = _write(tmp_path / "c", Quotas(min_free_bytes=2**62), records[:2])
    assert got["captured"] == 0 and got["disk_full"] == 2
