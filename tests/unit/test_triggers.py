"""Pipeline parameters and the trigger decision: labels (N, M per class), debounce, the
interval between pipelines, one live pipeline per lineage, and cron (croniter) on an
injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from service.config import load_settings
from service.gate.spec import GateRules
from service.jobs.pipeline_spec import PipelineSpec, TriggerSpec
from service.jobs.triggers import cron_tick, decide
from service.store.snapshots import NewLabels

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


def labels(count: int, per_class: dict[str, int], age_s: float = 3600) -> NewLabels:
    return NewLabels(count, per_class, T0 - timedelta(seconds=age_s), None)


def test_label_trigger_needs_n_and_m_per_class_and_debounces() -> None:
    spec = TriggerSpec(dataset="d", min_new_labels=10, min_per_class=3, debounce_s=60)
    go = decide(spec, T0, labels(10, {"a": 3, "b": 7}), False, None, T0)
    assert go.fire and "10 new labels" in go.reason
    assert not decide(spec, T0, labels(9, {"a": 3, "b": 6}), False, None, T0).fire
    short = decide(spec, T0, labels(12, {"a": 2, "b": 10}), False, None, T0)
    assert not short.fire and "['a']" in short.reason
    fresh = decide(spec, T0, labels(10, {"a": 5, "b": 5}, age_s=30), False, None, T0)
    assert not fresh.fire and fresh.reason.startswith("debouncing")
    # one pipeline per lineage; and at least min_interval_s between two
    assert not decide(spec, T0, labels(50, {"a": 25, "b": 25}), True, None, T0).fire
    recent = T0 - timedelta(seconds=spec.min_interval_s - 1)
    assert not decide(spec, T0, labels(50, {"a": 25, "b": 25}), False, recent, T0).fire
    older = T0 - timedelta(seconds=spec.min_interval_s + 1)
    assert decide(spec, T0, labels(50, {"a": 25, "b": 25}), False, older, T0).fire


def test_cron_fires_once_per_tick_on_an_injected_clock() -> None:
    spec = TriggerSpec(
        dataset="d", min_new_labels=None, cron="0 3 * * *", debounce_s=0, min_interval_s=0
    )
    nothing = NewLabels(0)
    started = T0  # 02:00: the worker started before today's 03:00 tick
    assert cron_tick("0 3 * * *", T0) == datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
    assert not decide(spec, T0 + timedelta(minutes=59), nothing, False, None, started).fire
    at = T0 + timedelta(hours=1, seconds=20)
    d = decide(spec, at, nothing, False, None, started)
    assert d.fire and d.cron_tick == datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
    # the pipeline it submitted is newer than the tick: no second one until tomorrow
    assert not decide(spec, at + timedelta(hours=5), nothing, False, at, started).fire
    tomorrow = datetime(2026, 3, 3, 3, 0, 1, tzinfo=UTC)
    assert decide(spec, tomorrow, nothing, False, at, started).fire
    # a worker that was down over a tick runs the one it missed, once
    assert decide(spec, tomorrow + timedelta(hours=2), nothing, False, at, tomorrow).fire


def test_trigger_and_pipeline_specs_are_validated() -> None:
    with pytest.raises(ValidationError, match="cron"):
        TriggerSpec(dataset="d", cron="every day")
    with pytest.raises(ValidationError, match="min_new_labels or cron"):
        TriggerSpec(dataset="d", min_new_labels=None)
    with pytest.raises(ValidationError, match="teacher_ref"):
        TriggerSpec(dataset="d", pipeline={"teacher": "ref"})
    spec = TriggerSpec(dataset="parts", pipeline={"student_epochs": 5, "teacher_batch": 16})
    params = spec.params("parts-student")
    assert params["lineage"] == "parts-student" and params["dataset"] == "parts"
    p = PipelineSpec.model_validate(params)
    assert p.steps() == [
        "snapshot",
        "teacher",
        "student",
        "evaluate",
        "export",
        "gate",
        "register",
        "policy",
    ]
    assert p.options("teacher") == {"arch": "t-model", "epochs": 30, "batch": 16}
    assert p.options("student") == {"arch": "s-model", "epochs": 5}
    only = PipelineSpec(lineage="m", dataset="d", student="train", evaluate=False)
    assert "teacher" not in only.steps() and "evaluate" not in only.steps()
    ref = PipelineSpec(lineage="m", dataset="d", teacher="ref", teacher_ref="neu-det-teacher")
    assert not ref.trains_teacher and "teacher" not in ref.options("teacher")


def test_gate_rules_and_triggers_are_settings() -> None:
    s = load_settings(
        None,
        gate_rules={"map50_margin": 0.01, "max_latency_ratio": 1.5},
        triggers={"neu-det-student": {"dataset": "neu", "min_new_labels": 200}},
    )
    assert s.gate_rules == GateRules(map50_margin=0.01, max_latency_ratio=1.5)
    assert s.gate_rules.max_escape_increase == 0.02  # the default: 2 points
    assert s.triggers["neu-det-student"].min_new_labels == 200
    assert load_settings(None).gate_rules == GateRules()
