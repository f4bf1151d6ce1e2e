"""Promotion logic: policy decisions, shadow criteria, the rollback window and band, and
the monitor's once-per-promotion trigger."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from service.errors import InvalidImage, QueueFull
from service.frames import Frame
from service.promotion.band import Window, error_rate_too_high, leaves_band
from service.promotion.monitor import RollbackMonitor, counts_as_error
from service.promotion.policy import decide
from service.promotion.shadow import criteria_met, due
from service.promotion.spec import PromotionSpec
from service.records import DetectionRecord, ModelInfo, Timing


@pytest.mark.parametrize(
    ("policy", "passed", "aliases"),
    [
        ("manual", True, ("candidate",)),
        ("shadow", True, ("candidate", "shadow")),
        ("auto", True, ("production",)),
        ("manual", False, ()),
        ("shadow", False, ()),
        ("auto", False, ()),  # a failed gate never gets production
    ],
)
def test_policy_decisions(policy: Any, passed: bool, aliases: tuple[str, ...]) -> None:
    assert decide(policy, passed) == aliases


def test_the_default_policy_is_manual() -> None:
    assert PromotionSpec.model_validate({}).policy == "manual"
    with pytest.raises(ValueError):
        PromotionSpec.model_validate({"policy": "yolo"})


@dataclass
class Summary:
    compared: int = 1000
    agreement: float = 0.995
    class_rate_delta: dict[str, float] = field(default_factory=lambda: {"a": 0.01, "b": -0.02})
    name: str = "m"
    production_version: int = 1
    shadow_version: int = 2
    pass_to_fail: int = 2
    fail_to_pass: int = 3
    precision: float | None = 0.9
    recall: float | None = 0.8


SPEC = PromotionSpec.model_validate(
    {
        "policy": "shadow",
        "shadow_min_frames": 1000,
        "shadow_min_agreement": 0.99,
        "shadow_max_class_rate_delta": 0.02,
    }
)


def test_shadow_criteria_at_and_beyond_each_bound() -> None:
    assert criteria_met(SPEC, Summary())  # every figure exactly at its bound passes
    assert not criteria_met(SPEC, Summary(compared=999))
    assert not criteria_met(SPEC, Summary(agreement=0.989))
    assert not criteria_met(SPEC, Summary(class_rate_delta={"a": 0.0, "b": -0.021}))
    assert criteria_met(SPEC, Summary(class_rate_delta={}))


def test_shadow_promotion_needs_the_current_pair() -> None:
    live = {"production": 1, "shadow": 2}
    assert due(SPEC, Summary(), live)
    assert not due(SPEC, Summary(), {"production": 2, "shadow": 2})  # already promoted
    assert not due(SPEC, Summary(), {"production": 1, "shadow": 3})  # a newer shadow
    assert not due(SPEC, Summary(), {"production": 4, "shadow": 2})  # stale production
    assert not due(SPEC, Summary(compared=10), live)


def test_window_keeps_the_last_n_and_fills_once() -> None:
    w = Window(4)
    assert [w.add(f) for f in (True, False, True, False)] == [False, False, False, True]
    assert w.full and w.fail_rate == 0.5
    assert [w.add(True) for _ in range(4)] == [False] * 4  # filled only once
    assert w.fail_rate == 1.0 and w.count == 4 and w.seen == 8
    assert Window(3).fail_rate == 0.0


def test_band_edges_are_inside() -> None:
    assert not leaves_band(0.2, 0.3, 0.1) and not leaves_band(0.2, 0.1, 0.1)
    assert leaves_band(0.2, 0.31, 0.1) and leaves_band(0.2, 0.09, 0.1)
    assert error_rate_too_high(6, 100, 0.05) and not error_rate_too_high(5, 100, 0.05)
    assert not error_rate_too_high(0, 0, 0.0)


def test_server_errors_count_and_client_errors_do_not() -> None:
    assert counts_as_error(RuntimeError("ort failed"))
    assert not counts_as_error(InvalidImage("junk")) and not counts_as_error(QueueFull("busy"))


def _frame(line: str = "L1") -> Frame:
    return Frame(data=b"", deadline=0.0, line=line)


def _rec(version: int, verdict: str, line: str = "L1") -> DetectionRecord:
    return DetectionRecord(
        frame_id="f",
        line=line,
        model=ModelInfo(name="m", version=version, role="student"),
        verdict=verdict,  # type: ignore[arg-type]
        detections=[],
        timing_ms=Timing(queue=0, inference=0, total=0),
    )


def _monitor(window: int = 10) -> tuple[RollbackMonitor, list[tuple[Any, ...]]]:
    fired: list[tuple[Any, ...]] = []
    mon = RollbackMonitor(window, 0.1, 0.2, "m", lambda x: x or "none", lambda *a: fired.append(a))
    mon.set_production("m", 1)
    return mon, fired


def _feed(mon: RollbackMonitor, version: int, fails: int, passes: int, line: str = "L1") -> None:
    for verdict in ["fail"] * fails + ["pass"] * passes:
        mon.observe(_frame(line), _rec(version, verdict, line))


def test_a_fail_rate_jump_after_a_promotion_rolls_back_once() -> None:
    mon, fired = _monitor()
    _feed(mon, 1, 2, 8)  # baseline: 20 % on L1
    mon.set_production("m", 2)
    _feed(mon, 1, 10, 0)  # late answers of the old version are not counted
    _feed(mon, 2, 9, 0)
    assert fired == []  # judged only when the first window is full
    _feed(mon, 2, 1, 30)
    assert len(fired) == 1
    name, bad, back, details = fired[0]
    assert (name, bad, back) == ("m", 2, 1)
    assert details["cause"] == "fail_rate" and details["line"] == "L1"
    assert details["fail_rate"] == 1.0 and details["baseline_fail_rate"] == 0.2


def test_within_the_band_nothing_happens_and_rollbacks_are_not_judged() -> None:
    mon, fired = _monitor()
    _feed(mon, 1, 2, 8)
    mon.set_production("m", 2)
    _feed(mon, 2, 3, 7)  # 30 %: the band's edge
    assert fired == []
    mon, fired = _monitor()
    _feed(mon, 1, 2, 8)
    mon.set_production("m", 2, rolled_back=True)
    _feed(mon, 2, 10, 0)
    assert fired == []


def test_a_line_without_a_baseline_is_not_judged_on_fail_rate() -> None:
    mon, fired = _monitor()
    _feed(mon, 1, 2, 5)  # L1's window never filled for version 1
    mon.set_production("m", 2)
    _feed(mon, 2, 10, 0)
    assert fired == []


def test_a_rising_error_rate_rolls_back() -> None:
    mon, fired = _monitor()
    mon.set_production("m", 2)
    _feed(mon, 2, 0, 7, line="L9")
    for _ in range(3):  # 3 of the first 10 requests fail: above 20 %
        mon.observe_error(_frame(), RuntimeError("boom"))
    assert len(fired) == 1 and fired[0][3]["cause"] == "error_rate"
    assert fired[0][3]["error_rate"] == 0.3
