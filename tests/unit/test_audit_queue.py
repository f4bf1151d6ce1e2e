"""The audit observer's loop side: bounded by rows and by image bytes, drops counted,
``required`` refuses (503) what ``best_effort`` answers; the edge comes from the caller."""

from __future__ import annotations

import time
from typing import Any

import pytest

from service.audit.audit import Audit
from service.config import load_settings
from service.errors import AuditUnavailable
from service.frames import Frame
from service.metrics import Metrics
from service.observers import EDGE
from service.records import DetectionRecord, ModelInfo, Timing
from service.registry import Registry


def _record(fid: str) -> DetectionRecord:
    return DetectionRecord(
        frame_id=fid,
        model=ModelInfo(name="m", version=1, role="student"),
        verdict="pass",
        detections=[],
        timing_ms=Timing(queue=0, inference=0, total=0),
    )


def _audit(mode: str, **kw: Any) -> tuple[Audit, Metrics]:
    settings = load_settings(None, audit=mode, **kw)
    metrics = Metrics()
    # the writer thread is never started: what is queued stays queued
    return Audit(settings, None, metrics, Registry(settings.registry_root)), metrics  # type: ignore[arg-type]


def _dropped(metrics: Metrics, reason: str) -> float:
    return (
        metrics.registry.get_sample_value("lineinspect_audit_dropped_total", {"reason": reason})
        or 0.0
    )


def _frame(fid: str, size: int = 10) -> Frame:
    return Frame(data=b"x" * size, deadline=time.time() + 5, frame_id=fid)


def test_best_effort_drops_and_counts_beyond_the_queue_bound() -> None:
    audit, metrics = _audit("best_effort", audit_queue_size=3)
    for i in range(5):
        audit.observe(_frame(str(i)), _record(str(i)))  # never raises
    assert audit.writer.queue.qsize() == 3 and _dropped(metrics, "queue_full") == 2
    assert metrics.registry.get_sample_value("lineinspect_audit_queue_depth") == 3


def test_the_image_bytes_waiting_are_bounded_too() -> None:
    audit, metrics = _audit("best_effort", audit_queue_bytes=2**16)
    big = 2**15
    for i in range(3):
        audit.observe(_frame(str(i), big), _record(str(i)))
    assert audit.writer.queue.qsize() == 2 and _dropped(metrics, "queue_full") == 1


def test_required_refuses_when_full_or_when_the_database_fails() -> None:
    audit, metrics = _audit("required", audit_queue_size=1)
    audit.observe(_frame("a"), _record("a"))
    with pytest.raises(AuditUnavailable, match="queue is full"):
        audit.observe(_frame("b"), _record("b"))
    audit.writer.queue.get_nowait()
    audit.writer.failing = True
    with pytest.raises(AuditUnavailable, match="database is failing") as exc:
        audit.observe(_frame("c"), _record("c"))
    assert exc.value.http_status == 503 and exc.value.grpc_code == "UNAVAILABLE"
    assert _dropped(metrics, "queue_full") == 1 and _dropped(metrics, "db_failing") == 1
    assert audit.writer.queue.empty()  # a refused frame is not queued


def test_the_edge_is_what_the_caller_set() -> None:
    audit, _ = _audit("best_effort")
    audit.observe(_frame("none"), _record("none"))
    token = EDGE.set("grpc")
    try:
        audit.observe(_frame("g"), _record("g"))
    finally:
        EDGE.reset(token)
    assert [e.edge for e in list(audit.writer.queue.queue)] == [None, "grpc"]
