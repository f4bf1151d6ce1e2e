"""Capture from live traffic under 16-way concurrent load: every sampler keeps exactly
the frames its rule selects, limits and quotas hold, drops are counted, the answers are
all there; flagging a recent frame; retention never touches labelled or golden samples."""

from __future__ import annotations

import concurrent.futures as cf
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from service.api.app import create_app
from service.capture.writer import apply_retention
from service.config import load_settings
from service.registry import Registry
from service.store import Store, datasets, intake, labels
from service.store.schema import Sample
from tests.conftest import defect_image, encode
from tests.support.datasets import CLASSES, png
from tests.support.http import HTTP
from tests.support.servers import serve_app

QUOTA = 12
SAMPLERS = [
    {"name": "all", "kind": "random", "fraction": 1.0, "per_day": 5, "dataset": "c-all"},
    {"name": "hot", "kind": "classes", "classes": ["scratch"], "dataset": "c-hot"},
    {"name": "empty", "kind": "detections_count", "fewer_than": 1, "dataset": "c-empty"},
    {
        "name": "many",
        "kind": "detections_count",
        "more_than": 0,
        "dataset": "c-many",
        "lines": ["L2"],
    },
    {"name": "near", "kind": "near_threshold", "epsilon": 0.2, "dataset": "c-near"},
    {"name": "flag", "kind": "flagged", "per_day": 3, "dataset": "c-flag"},
]


def _frames() -> list[bytes]:
    out = []
    for i in range(24):  # a bright 'defect' of varying place and size
        x, y = 10 + 5 * (i % 6), 10 + 6 * (i // 6)
        out.append(encode(defect_image(box=(x, y, x + 30 + i, y + 40)), "PNG"))
    rng = np.random.default_rng(0)
    for _ in range(16):  # plain dark frames, unique by their noise
        out.append(encode(rng.integers(0, 30, (160, 200, 3), dtype=np.uint8), "PNG"))
    return out


def _metric(url: str, name: str) -> dict[tuple[str, ...], float]:
    out: dict[tuple[str, ...], float] = {}
    for fam in text_string_to_metric_families(HTTP.get(f"{url}/metrics").text):
        for s in fam.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.values()))] = s.value
    return out


def test_samplers_limits_and_quotas_under_concurrent_load(
    tiny_registry: Registry, tmp_path: Path
) -> None:
    settings = load_settings(
        None,
        registry_root=tiny_registry.root,
        models=["tiny"],
        warmup_runs=1,
        data_root=tmp_path / "data",
        capture_samplers=SAMPLERS,
        score_threshold=0.5,
        capture_dataset_quota_images=QUOTA,
        capture_min_free_bytes=0,
    )
    app: FastAPI = create_app(settings)
    frames = _frames()
    with serve_app(app) as url:

        def send(i: int) -> dict[str, Any]:
            line = "L2" if i % 2 else "L1"
            r = HTTP.post(
                f"{url}/v1/inspect",
                params={"line": line},
                content=frames[i],
                headers={"Content-Type": "image/png"},
            )
            assert r.status_code == 200, r.text
            return dict(r.json())

        with cf.ThreadPoolExecutor(16) as pool:
            records = list(pool.map(send, range(len(frames))))
        flagged = [records[i]["frame_id"] for i in (0, 1, 30, 31)]
        answers = [HTTP.post(f"{url}/v1/frames/{f}/flag") for f in flagged]
        assert [a.status_code for a in answers] == [202] * 4
        assert [a.json()["samplers"] for a in answers] == [["flag"]] * 3 + [[]]
        assert HTTP.post(f"{url}/v1/frames/unknown/flag").status_code == 404
        app.state.capture.writer.drain()
        captured = _metric(url, "lineinspect_captured_frames_total")
        dropped = _metric(url, "lineinspect_capture_dropped_frames_total")
    labels_of = [{d["label"] for d in r["detections"]} for r in records]
    expected = {
        "all": len(records),
        "hot": sum("scratch" in ls for ls in labels_of),
        "empty": sum(not r["detections"] for r in records),
        "many": sum(bool(r["detections"]) and r["line"] == "L2" for r in records),
        "near": sum(any(abs(d["score"] - 0.5) <= 0.2 for d in r["detections"]) for r in records),
    }
    assert expected["hot"] > QUOTA and expected["empty"] > QUOTA and expected["many"] > 0
    kept = {"all": 5, **{k: min(v, QUOTA) for k, v in expected.items() if k != "all"}, "flag": 3}
    st = Store(tmp_path / "data")
    try:
        with st.transaction() as s:
            for name, n in kept.items():
                ds = datasets.get(s, f"c-{name}") if n else None
                rows = (
                    list(s.scalars(select(Sample).where(Sample.dataset_id == ds.id))) if ds else []
                )
                assert len(rows) == n, name
                assert captured.get((name,), 0.0) == n, name
                for row in rows:
                    assert row.source == "capture" and row.state == "unlabelled"
                    assert row.sampler == name and row.record is not None
                    original = next(r for r in records if r["frame_id"] == row.frame_id)
                    assert row.record["detections"] == original["detections"]
                    assert row.prediction == original["detections"]
                    assert row.model_ref == "tiny:1"
            assert datasets.get(s, "c-all").classes == ["scratch", "dent"]
    finally:
        st.close()
    assert dropped[("all", "limit")] == len(records) - 5
    assert dropped[("flag", "limit")] == 1
    for name in ("hot", "empty", "near"):  # label values sort as (sampler, reason)
        assert dropped.get((name, "quota_dataset"), 0) + kept[name] == expected[name]


def test_duplicates_are_dropped_and_counted(tiny_registry: Registry, tmp_path: Path) -> None:
    settings = load_settings(
        None,
        registry_root=tiny_registry.root,
        models=["tiny"],
        warmup_runs=1,
        data_root=tmp_path / "data",
        capture_min_free_bytes=0,
        capture_samplers=[{"name": "all", "kind": "random", "fraction": 1.0, "dataset": "c"}],
    )
    app = create_app(settings)
    img = encode(defect_image(), "PNG")
    png_type = {"Content-Type": "image/png"}
    with serve_app(app) as url:
        for _ in range(3):
            assert HTTP.post(f"{url}/v1/inspect", content=img, headers=png_type).status_code == 200
        app.state.capture.writer.drain()
        assert _metric(url, "lineinspect_captured_frames_total")[("all",)] == 1
        assert _metric(url, "lineinspect_capture_dropped_frames_total")[("all", "duplicate")] == 2
        assert _metric(url, "lineinspect_store_bytes")[()] == len(img)


def test_retention_deletes_only_unlabelled_capture_pixels(tmp_path: Path) -> None:
    st = Store(tmp_path / "data")
    old = datetime.now(UTC) - timedelta(days=40)
    try:
        with st.transaction() as s:
            ds, _ = datasets.get_or_create(s, "d", CLASSES, 0.2)
            made = {}
            for i, (kind, golden) in enumerate(
                [("unlabelled", False), ("labelled", False), ("unlabelled", True), ("fresh", False)]
            ):
                item = intake.Item(
                    data=png(i),
                    source="capture",
                    golden=golden,
                    taken_at=old if kind != "fresh" else None,
                )
                if kind == "labelled":
                    item.state, item.boxes = "labelled", [{"box": [1, 1, 9, 9], "label": "dark"}]
                smp, _ = intake.take(s, st.blobs, ds, item, st.max_pixels)
                made[(kind, golden)] = smp.sha256
        assert apply_retention(st, 30) == 1
        gone = made[("unlabelled", False)]
        assert not st.blobs.exists(gone)
        for key, sha in made.items():
            if sha != gone:
                assert st.blobs.exists(sha), key
        with st.transaction() as s:
            rows = {r.sha256: r for r in s.scalars(select(Sample))}
            assert rows[gone].pixels_deleted_at is not None
            kept = rows[made[("labelled", False)]]
            assert kept.pixels_deleted_at is None and labels.current(s, kept) is not None
        assert apply_retention(st, 30) == 0
    finally:
        st.close()
