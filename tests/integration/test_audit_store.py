"""The audit trail's store part on SQLite and on a real PostgreSQL server: insert or
ignore, retention (direct and by the writer), query filters and paging, the per-line
summary."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from service.audit import queries
from service.audit.rows import Entry, row_values, to_json
from service.audit.schema import AuditRow
from service.audit.trail import apply_retention, write_rows
from service.audit.writer import AuditWriter
from service.config import load_settings
from service.metrics import Metrics
from service.records import DetectionRecord, ModelInfo, Timing
from service.registry import Registry
from service.store import Store
from service.thresholds import ServedThresholds
from tests.support.postgres_server import postgres_server
from tests.support.servers import wait_until
from tests.support.stores import store

__all__ = ["postgres_server", "store"]  # the fixtures

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def row(
    fid: str,
    minutes_ago: float = 0,
    line: str | None = "L1",
    camera: str | None = "c1",
    verdict: str = "pass",
    model: tuple[str, int] = ("m", 1),
    counts: dict[str, int] | None = None,
) -> dict[str, Any]:
    counts = counts or {}
    return {
        "frame_id": fid,
        "time": NOW - timedelta(minutes=minutes_ago),
        "edge": "rest",
        "line": line,
        "camera": camera,
        "image_sha256": hashlib.sha256(fid.encode()).hexdigest(),
        "model_name": model[0],
        "model_version": model[1],
        "thresholds": {"scratch": 0.4},
        "verdict": verdict,
        "counts": counts,
        "max_score": 0.9 if counts else None,
    }


def count(st: Store) -> int:
    with st.transaction() as s:
        return int(s.scalar(select(func.count()).select_from(AuditRow)) or 0)


def test_a_frame_written_twice_keeps_its_first_row(store: Store) -> None:
    assert write_rows(store, [row("a"), row("b"), row("b", verdict="fail")]) == 2
    assert write_rows(store, [row("b", verdict="fail"), row("c")]) == 1
    assert write_rows(store, []) == 0
    with store.transaction() as s:
        b = queries.one(s, "b")
        assert b is not None and b.verdict == "pass"  # the first answer stays
        assert queries.one(s, "nope") is None
    assert count(store) == 3


def test_retention_deletes_old_rows_directly_and_from_the_writer(store: Store) -> None:
    day = 24 * 60
    write_rows(store, [row(f"old{i}", 40 * day) for i in range(7)])
    write_rows(store, [row("recent", 2 * day), row("now")])
    assert apply_retention(store, 30, now=NOW) == 7
    assert apply_retention(store, 30, now=NOW) == 0
    with store.transaction() as s:
        assert {r.frame_id for r in queries.every(s, queries.Filters())} == {"recent", "now"}
    # the writer applies it on its own, every retention_every_s (here: at once and often)
    assert apply_retention(store, 0, now=NOW + timedelta(seconds=1)) == 2
    real_now = datetime.now(UTC)
    rows = [row(f"f{i}") | {"time": real_now} for i in range(3)]
    rows += [row(f"g{i}") | {"time": real_now - timedelta(days=3)} for i in range(4)]
    write_rows(store, rows)
    settings = load_settings(None)
    writer = AuditWriter(
        store,
        Metrics(),
        ServedThresholds(settings, Registry(settings.registry_root)),
        size=8,
        batch_size=4,
        flush_s=0.01,
        max_bytes=2**20,
        retention_days=1,
        retention_every_s=0.05,
    )
    writer.start()
    try:
        wait_until(lambda: count(store) == 3, timeout=30)
    finally:
        writer.stop()
    with store.transaction() as s:
        assert {r.frame_id for r in queries.every(s, queries.Filters())} == {"f0", "f1", "f2"}


def test_filters_paging_and_the_newest_first_order(store: Store) -> None:
    rows = [
        row(
            f"r{i:02d}",
            minutes_ago=i,
            line=("L1", "L2", None)[i % 3],
            camera=f"c{i % 2}",
            verdict="fail" if i % 4 == 0 else "pass",
            model=("m", 1 + i % 2) if i < 20 else ("other", 1),
        )
        for i in range(30)
    ]
    write_rows(store, rows)

    def ids(f: queries.Filters, offset: int = 0, limit: int = 100) -> tuple[int, list[str]]:
        with store.transaction() as s:
            total, got = queries.page(s, f, offset, limit)
            return total, [r.frame_id for r in got]

    every = [r["frame_id"] for r in rows]  # r00 is the newest
    assert ids(queries.Filters()) == (30, every)
    assert ids(queries.Filters(), offset=10, limit=5) == (30, every[10:15])
    assert ids(queries.Filters(), offset=40) == (30, [])
    l1 = [r["frame_id"] for r in rows if r["line"] == "L1"]
    assert ids(queries.Filters(line="L1")) == (len(l1), l1)
    want = [r["frame_id"] for r in rows if r["camera"] == "c1" and r["verdict"] == "fail"]
    assert ids(queries.Filters(camera="c1", verdict="fail")) == (len(want), want)
    assert ids(queries.Filters(model="other"))[0] == 10
    m2 = [r["frame_id"] for r in rows if r["model_name"] == "m" and r["model_version"] == 2]
    assert ids(queries.Filters(model="m:2")) == (len(m2), m2)
    window = queries.Filters(start=NOW - timedelta(minutes=10), end=NOW - timedelta(minutes=5))
    assert ids(window) == (5, every[6:11])  # from inclusive, to exclusive
    naive = queries.Filters(start=(NOW - timedelta(minutes=2)).replace(tzinfo=None))
    assert ids(naive) == (3, every[:3])  # no zone = UTC
    with store.transaction() as s:
        assert [r.frame_id for r in queries.every(s, queries.Filters(), chunk=7)] == every
        shown = to_json(queries.one(s, "r04"))  # type: ignore[arg-type]
    assert shown == {
        "frame_id": "r04",
        "time": (NOW - timedelta(minutes=4)).isoformat(),
        "edge": "rest",
        "line": "L2",
        "camera": "c0",
        "image_sha256": hashlib.sha256(b"r04").hexdigest(),
        "model": {"name": "m", "version": 1},
        "thresholds": {"scratch": 0.4},
        "verdict": "fail",
        "counts": {},
        "max_score": None,
    }


def test_lines_summary_counts_frames_fail_rate_and_top_classes(store: Store) -> None:
    rows = [
        row("a1", 1, "A", verdict="fail", counts={"scratch": 2, "dent": 1}),
        row("a2", 2, "A", verdict="fail", counts={"scratch": 1}),
        row("a3", 3, "A"),
        row("a4", 4, "A"),
        row("b1", 5, "B", verdict="fail", counts={"dent": 3}),
        row("n1", 6, None),
        row("old", 90, "A", verdict="fail", counts={"pit": 9}),  # outside a 1 h window
    ]
    write_rows(store, rows)
    with store.transaction() as s:
        got = queries.lines_summary(s, 3600, now=NOW)
    assert got == {
        "window_s": 3600,
        "lines": [
            {
                "line": "A",
                "frames": 4,
                "per_minute": round(4 / 60, 3),
                "fail_rate": 0.5,
                "top_classes": [{"label": "scratch", "count": 3}, {"label": "dent", "count": 1}],
            },
            {
                "line": "B",
                "frames": 1,
                "per_minute": round(1 / 60, 3),
                "fail_rate": 1.0,
                "top_classes": [{"label": "dent", "count": 3}],
            },
            {"line": None, "frames": 1, "per_minute": 0.017, "fail_rate": 0.0, "top_classes": []},
        ],
    }
    with store.transaction() as s:
        assert queries.lines_summary(s, 60, now=NOW - timedelta(hours=5))["lines"] == []


def test_a_queued_entry_becomes_its_row(store: Store, tiny_registry: Registry) -> None:
    """Hash, counts, max score and the served thresholds are worked out in the writer."""
    settings = load_settings(
        None,
        registry_root=tiny_registry.root,
        models=["tiny"],
        score_threshold=0.4,
        class_thresholds={"dent": 0.6},
    )
    record = DetectionRecord(
        frame_id="x" * 200,
        line="L" * 300,
        camera=None,
        model=ModelInfo(name="tiny", version=1, role="student"),
        verdict="fail",
        detections=[
            {"box": [0, 0, 1, 1], "score": 0.7, "label": "scratch"},
            {"box": [0, 0, 2, 2], "score": 0.91, "label": "scratch"},
            {"box": [0, 0, 3, 3], "score": 0.65, "label": "dent"},
        ],
        timing_ms=Timing(queue=0, inference=0, total=0),
    )
    entry = Entry(time.time(), b"image bytes", record, "grpc")
    values = row_values(entry, ServedThresholds(settings, tiny_registry))
    assert values["image_sha256"] == hashlib.sha256(b"image bytes").hexdigest()
    assert values["counts"] == {"scratch": 2, "dent": 1} and values["max_score"] == 0.91
    assert values["thresholds"] == {"scratch": 0.4, "dent": 0.6}
    assert len(values["frame_id"]) == 128 and len(values["line"]) == 128
    gone = record.model_copy(update={"model": ModelInfo(name="gone", version=9, role="x")})
    assert (
        row_values(Entry(0.0, b"", gone, None), ServedThresholds(settings, tiny_registry))[
            "thresholds"
        ]
        == {}
    )
    assert write_rows(store, [values]) == 1
