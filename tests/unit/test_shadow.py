"""Shadow serving's pure parts: matching at IoU 0.5, precision and recall, agreement
counting, the summary reset on a version change, and drop-and-count in the observer."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

from service.config import load_settings
from service.frames import Frame
from service.metrics import Metrics
from service.records import Detection, DetectionRecord, ModelInfo, Timing
from service.registry import Registry
from service.shadow.compare import compare, iou, match_count, outcome
from service.shadow.record import noted
from service.shadow.serving import ShadowServing
from service.shadow.summary import Tally


def det(box: list[float], label: str = "scratch", score: float = 0.9) -> Detection:
    return Detection(box=box, score=score, label=label)


def rec(dets: list[Detection], verdict: str | None = None, version: int = 1) -> DetectionRecord:
    return DetectionRecord(
        frame_id="f",
        model=ModelInfo(name="tiny", version=version, role="student"),
        verdict=verdict or ("fail" if dets else "pass"),  # type: ignore[arg-type]
        detections=dets,
        timing_ms=Timing(queue=0, inference=0, total=0),
    )


def test_iou() -> None:
    assert iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert iou([0, 0, 10, 10], [10, 0, 20, 10]) == 0.0
    assert iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(50 / 150)


def test_matching_is_one_to_one_same_label_at_iou_half() -> None:
    prod = [det([0, 0, 10, 10]), det([50, 50, 60, 60], "dent")]
    # IoU 0.6 and same label: a match; the second shadow box on the same production
    # box has nothing left to match; the dent is at the right place but wrong label.
    shadow = [
        det([0, 0, 10, 12], score=0.8),
        det([0, 0, 10, 11], score=0.7),
        det([50, 50, 60, 60], "scratch"),
    ]
    assert match_count(prod, shadow) == 1
    assert match_count(prod, [det([5, 0, 15, 10])]) == 0  # IoU 1/3
    assert match_count([], []) == 0


def test_outcomes_are_directional() -> None:
    assert outcome("pass", "pass") == "agree"
    assert outcome("pass", "fail") == "pass_to_fail"
    assert outcome("fail", "pass") == "fail_to_pass"


def test_comparison_disagrees_on_verdict_or_unmatched_detection() -> None:
    a = det([0, 0, 10, 10])
    assert not compare(rec([a]), rec([a])).disagrees
    assert not compare(rec([]), rec([])).disagrees
    assert compare(rec([a]), rec([a, det([40, 40, 50, 50])])).disagrees  # same verdict
    assert compare(rec([]), rec([a])).outcome == "pass_to_fail"


def test_tally_precision_recall_agreement_and_class_rates() -> None:
    t = Tally("tiny", 1, 2)
    a, b = det([0, 0, 10, 10]), det([30, 30, 40, 40], "dent")
    t.add(compare(rec([a]), rec([a])), 0.010)  # agree, 1/1 matched
    t.add(compare(rec([a, b]), rec([a])), 0.020)  # agree, shadow misses the dent
    t.add(compare(rec([]), rec([b])), 0.030)  # pass -> fail, a false dent
    t.add(compare(rec([b]), rec([])), 0.040)  # fail -> pass
    s = t.summary()
    assert (s.compared, s.pass_to_fail, s.fail_to_pass) == (4, 1, 1)
    assert s.agreement == 0.5
    assert s.precision == pytest.approx(2 / 3)  # 2 matched of 3 shadow detections
    assert s.recall == pytest.approx(2 / 4)  # 2 matched of 4 production detections
    # scratch: production 2/4 frames, shadow 2/4; dent: production 2/4, shadow 1/4
    assert s.class_rate_delta == {"dent": -0.25, "scratch": 0.0}
    assert s.latency_ms_mean == pytest.approx(25.0)


def test_empty_tally() -> None:
    s = Tally("tiny", 1, 2).summary()
    assert (s.compared, s.agreement, s.precision, s.recall, s.class_rate_delta) == (
        0,
        0.0,
        None,
        None,
        {},
    )


def test_noted_record_keeps_production_and_adds_the_shadow() -> None:
    prod, shadow = rec([det([0, 0, 10, 10])]), rec([], version=2)
    out = noted(prod, shadow).model_dump(mode="json")
    assert out["model"]["version"] == 1 and out["detections"] == prod.model_dump()["detections"]
    assert out["shadow"] == {
        "model": {"name": "tiny", "version": 2, "role": "student"},
        "verdict": "pass",
        "detections": [],
    }


class FakeManager:
    def __init__(self, aliases: dict[str, int], waiting: int = 0) -> None:
        self._aliases, self._waiting = aliases, waiting

    def aliases(self, name: str) -> dict[str, int]:
        return dict(self._aliases)

    def waiting(self, name: str, version: int) -> int:
        return self._waiting


def serving(tiny_registry: Registry, manager: Any, **kw: Any) -> tuple[ShadowServing, Metrics]:
    settings = load_settings(
        None, registry_root=tiny_registry.root, models=["tiny"], shadow_fraction=1.0, **kw
    )
    metrics = Metrics()
    return ShadowServing(settings, tiny_registry, manager, metrics), metrics


def value(metrics: Metrics, metric: str, **labels: str) -> float:
    got = metrics.registry.get_sample_value(metric, labels)
    assert got is not None, (metric, labels)
    return got


def test_which_alias_shadows(tiny_registry: Registry) -> None:
    s, _ = serving(tiny_registry, FakeManager({"production": 1, "candidate": 2}))
    assert s.pair("tiny") == (1, 2)  # by default the candidate
    assert s.pair("other") is None
    s, _ = serving(tiny_registry, FakeManager({"production": 1, "candidate": 2, "shadow": 3}))
    assert s.pair("tiny") == (1, 3)
    s, _ = serving(
        tiny_registry,
        FakeManager({"production": 1, "candidate": 2}),
        shadow_fallback_candidate=False,
    )
    assert s.pair("tiny") is None and s.summary("tiny") is None
    s, _ = serving(tiny_registry, FakeManager({"production": 1, "shadow": 1}))
    assert s.pair("tiny") is None  # shadowing itself compares nothing


def test_series_exist_from_start_up(tiny_registry: Registry) -> None:
    _, m = serving(tiny_registry, FakeManager({"production": 1}))
    for o in ("agree", "pass_to_fail", "fail_to_pass"):
        assert value(m, "lineinspect_shadow_frames_total", name="tiny", outcome=o) == 0
    for r in ("queue_full", "busy", "stale", "no_image", "error"):
        assert value(m, "lineinspect_shadow_dropped_total", name="tiny", reason=r) == 0
    assert math.isnan(value(m, "lineinspect_shadow_precision", name="tiny"))


def test_full_queue_and_busy_production_drop_and_count(tiny_registry: Registry) -> None:
    manager = FakeManager({"production": 1, "candidate": 2})
    s, m = serving(tiny_registry, manager, shadow_queue_size=2)  # thread not started
    frame = Frame(b"not decoded here", time.time() + 10)
    for _ in range(5):
        s.observe(frame, rec([]))
    assert value(m, "lineinspect_shadow_dropped_total", name="tiny", reason="queue_full") == 3
    manager._waiting = 8  # a full batch waits for production: shadow backs off
    s.observe(frame, rec([]))
    assert value(m, "lineinspect_shadow_dropped_total", name="tiny", reason="busy") == 1
    s.observe(Frame(b"", time.time() + 10), rec([]))  # a tensor input: no image to shadow
    s.observe(frame, rec([], version=2))  # answered by another version: not production's
    assert value(m, "lineinspect_shadow_dropped_total", name="tiny", reason="no_image") == 1
    assert s.pending == 2
    summary = s.summary("tiny")
    assert summary is not None and summary.dropped == 5 and summary.compared == 0


def test_summary_resets_when_a_version_changes(tiny_registry: Registry) -> None:
    manager = FakeManager({"production": 1, "candidate": 2})
    s, _ = serving(tiny_registry, manager)
    with s._lock:
        s._tally("tiny", (1, 2)).add(compare(rec([]), rec([])), 0.01)
    first = s.summary("tiny")
    assert first is not None and first.compared == 1
    manager._aliases["candidate"] = 3
    after = s.summary("tiny")
    assert after is not None and (after.shadow_version, after.compared) == (3, 0)
    manager._aliases.update(production=2, candidate=3)
    again = s.summary("tiny")
    assert again is not None and (again.production_version, again.compared) == (2, 0)
