"""Promotion on a real server and store: PUT and rollback under 16-way load with zero
failed requests, the history over REST, the policies, automatic rollback when a
promoted version's fail rate jumps, and a shadow promotion from a summary provider."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from service.api.app import create_app
from service.auth.tokens import Scope, TokenEntry, hash_token, new_token
from service.config import Settings, load_settings
from service.errors import Conflict, ModelNotFound
from service.promotion.history import history, move_alias
from service.promotion.policy import apply_policy
from service.promotion.rollback import plan_rollback
from service.registry import Registry
from service.store import Store
from tests.integration.test_rest import metric_samples
from tests.support.http import HTTP
from tests.support.load import inspect_once, under_load
from tests.support.servers import serve_app, wait_until
from tests.support.tiny_onnx import write_artefact


def _settings(reg: Registry, data: Path, **kw: Any) -> Settings:
    base = {
        "registry_root": reg.root,
        "data_root": data,
        "models": ["tiny"],
        "registry_poll_s": 0.05,
        "promotion_check_s": 0.05,
        "warmup_runs": 1,
    }
    return load_settings(None, **{**base, **kw})


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def store(data: Path) -> Iterator[Store]:
    st = Store(data)
    try:
        yield st
    finally:
        st.close()


def _history(url: str, name: str = "tiny") -> list[dict[str, Any]]:
    r = HTTP.get(url + f"/v1/models/{name}/history")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["name"] == name
    return list(body["items"])


def _counter(url: str, metric: str, **labels: str) -> float:
    samples = metric_samples(url).get(metric, [])
    return sum(s.value for s in samples if all(s.labels.get(k) == v for k, v in labels.items()))


def test_promotion_and_rollback_under_load_fail_nothing_and_are_recorded(
    tiny_registry: Registry, data: Path
) -> None:
    with serve_app(create_app(_settings(tiny_registry, data))) as url:
        assert _counter(url, "lineinspect_rollbacks_total", name="tiny", reason="manual") == 0

        def promote() -> Any:
            return HTTP.put(url + "/v1/models/tiny/aliases/production", json={"version": 2})

        r, answers = under_load(url, promote)
        assert r.status_code == 200 and r.json()["previous"] == 1
        assert all(code == 200 for code, _ in answers)
        assert {b["model"]["version"] for _, b in answers[150:]} == {2}

        def back() -> Any:
            return HTTP.post(url + "/v1/models/tiny/rollback", json={"reason": "dents missed"})

        r, answers = under_load(url, back)
        assert r.status_code == 200, r.text
        assert r.json() == {"name": "tiny", "alias": "production", "version": 1, "previous": 2}
        assert all(code == 200 for code, _ in answers)
        assert {b["model"]["version"] for _, b in answers[150:]} == {1}
        assert tiny_registry.aliases("tiny") == {"production": 1}

        items = _history(url)
        assert [(i["alias"], i["from_version"], i["to_version"], i["reason"]) for i in items] == [
            ("production", 2, 1, "rollback"),
            ("production", 1, 2, "manual"),
        ]
        assert items[0]["actor"] == "api" and items[0]["details"]["reason"] == "dents missed"
        assert items[0]["id"] > items[1]["id"] and items[0]["created_at"] >= items[1]["created_at"]
        assert (
            HTTP.get(url + "/v1/models/tiny/history", params={"limit": 1}).json()["items"]
            == (items[:1])
        )
        assert HTTP.get(url + "/v1/models/nope/history").status_code == 404
        wait_until(
            lambda: _counter(url, "lineinspect_rollbacks_total", name="tiny", reason="manual") == 1
        )
        assert (
            _counter(
                url,
                "lineinspect_promotions_total",
                name="tiny",
                alias="production",
                reason="manual",
            )
            == 1
        )


def test_rollback_without_history_goes_to_the_previous_version(
    tiny_registry: Registry, store: Store, tmp_path: Path
) -> None:
    with pytest.raises(Conflict, match="no earlier version"):
        plan_rollback(tiny_registry, store, "tiny")  # production is v1
    tiny_registry.register(write_artefact(tmp_path / "a3"), "tiny")
    tiny_registry.set_alias("tiny", "production", 3)  # a hand edit: no history row
    plan = plan_rollback(tiny_registry, store, "tiny")
    assert (plan.current, plan.target, plan.source) == (3, 2, "previous_version")
    move_alias(tiny_registry, store, "tiny", "production", 1, "t", "manual")
    plan = plan_rollback(tiny_registry, store, "tiny")
    assert (plan.current, plan.target, plan.source) == (1, 3, "history")


def test_policies_move_the_right_aliases_and_a_failed_gate_none(
    tiny_registry: Registry, store: Store, data: Path, tmp_path: Path
) -> None:
    promotion = {"tiny": {"policy": "auto"}, "shadowed": {"policy": "shadow"}}
    settings = _settings(tiny_registry, data, promotion=promotion)
    report = {"passed": False, "rules": [{"rule": "map50", "ok": False}]}
    held = apply_policy(settings, tiny_registry, store, "tiny", 2, False, report)
    assert held["aliases"] == {} and held["held"] == "gate failed" and held["policy"] == "auto"
    assert tiny_registry.aliases("tiny") == {"production": 1}
    done = apply_policy(settings, tiny_registry, store, "tiny", 2, True, {"passed": True})
    assert done["aliases"] == {"production": 2} and done["previous"] == {"production": 1}
    tiny_registry.register(write_artefact(tmp_path / "s1"), "shadowed", alias="production")
    tiny_registry.register(write_artefact(tmp_path / "s2"), "shadowed")
    shadow = apply_policy(settings, tiny_registry, store, "shadowed", 2, True, {})
    assert shadow["aliases"] == {"candidate": 2, "shadow": 2}
    tiny_registry.register(write_artefact(tmp_path / "m1"), "unlisted")
    manual = apply_policy(settings, tiny_registry, store, "unlisted", 1, True, {}, actor="job:7")
    assert manual == {
        "policy": "manual",
        "gate_passed": True,
        "aliases": {"candidate": 1},
        "previous": {"candidate": None},
    }
    rows = history(store, "tiny")
    assert [(r.alias, r.from_version, r.to_version, r.reason, r.actor) for r in rows] == [
        ("production", 1, 2, "gate", "pipeline")
    ]
    assert rows[0].details["report"] == {"passed": True} and rows[0].details["policy"] == "auto"
    assert [r.alias for r in history(store, "shadowed")] == ["shadow", "candidate"]  # newest first
    assert history(store, "unlisted")[0].actor == "job:7"


def test_a_promoted_version_whose_fail_rate_jumps_is_rolled_back(
    tmp_path: Path, data: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reg = Registry(tmp_path / "reg")
    reg.root.mkdir()
    reg.register(write_artefact(tmp_path / "v1"), "tiny", alias="production")  # always fails
    reg.register(write_artefact(tmp_path / "v2", bright=2.0), "tiny")  # never detects
    settings = _settings(reg, data, rollback_window_frames=20, rollback_fail_rate_band=0.2)
    caplog.set_level(logging.WARNING, logger="service.promotion.loop")
    with serve_app(create_app(settings)) as url:
        for _ in range(20):
            code, body = inspect_once(url, line="L1")
            assert code == 200 and body["verdict"] == "fail"
        r = HTTP.put(url + "/v1/models/tiny/aliases/production", json={"version": 2})
        assert r.status_code == 200

        def rolled_back() -> bool:
            code, _ = inspect_once(url, line="L1")
            assert code == 200
            return reg.aliases("tiny")["production"] == 1

        wait_until(rolled_back, timeout=60)
        items = _history(url)
        newest = items[0]
        assert (newest["from_version"], newest["to_version"]) == (2, 1)
        assert newest["reason"] == "auto_rollback" and newest["actor"] == "rollback-monitor"
        d = newest["details"]
        assert d["cause"] == "fail_rate" and d["line"] == "L1"
        assert d["fail_rate"] == 0.0 and d["baseline_fail_rate"] == 1.0 and d["band"] == 0.2
        assert len(items) == 2  # rolled back once; the rollback itself is not judged
        wait_until(
            lambda: _counter(url, "lineinspect_rollbacks_total", name="tiny", reason="auto") == 1
        )
        wait_until(lambda: inspect_once(url, line="L1")[1]["model"]["version"] == 1)
    assert any("rolled tiny@production back from 2 to 1" in m for m in caplog.messages)


@dataclass
class FakeSummary:
    name: str
    production_version: int
    shadow_version: int
    compared: int
    agreement: float = 0.999
    pass_to_fail: int = 0
    fail_to_pass: int = 1
    precision: float | None = 1.0
    recall: float | None = 0.99
    class_rate_delta: dict[str, float] = field(default_factory=lambda: {"scratch": 0.001})


class FakeShadow:
    """Stands in for the shadow serving's ``app.state.shadow``."""

    def __init__(self, summary: FakeSummary) -> None:
        self.current = summary
        self.asked = 0
        self.lock = threading.Lock()

    def summary(self, name: str) -> FakeSummary | None:
        with self.lock:
            self.asked += 1
        return self.current if name == self.current.name else None


def test_shadow_policy_promotes_when_the_criteria_hold(
    tiny_registry: Registry, data: Path, store: Store
) -> None:
    spec = {"policy": "shadow", "shadow_min_frames": 50, "shadow_min_agreement": 0.99}
    settings = _settings(tiny_registry, data, promotion={"tiny": spec})
    apply_policy(settings, tiny_registry, store, "tiny", 2, True, {"passed": True})
    assert tiny_registry.aliases("tiny") == {"production": 1, "candidate": 2, "shadow": 2}
    app: FastAPI = create_app(settings)
    with serve_app(app) as url:
        fake = FakeShadow(FakeSummary("tiny", 1, 2, compared=49))
        app.state.shadow = fake
        wait_until(lambda: fake.asked >= 5)  # several checks with too few frames
        assert tiny_registry.aliases("tiny")["production"] == 1
        fake.current = FakeSummary("tiny", 1, 2, compared=50)
        wait_until(lambda: tiny_registry.aliases("tiny")["production"] == 2)
        newest = _history(url)[0]
        assert newest["reason"] == "shadow" and newest["actor"] == "shadow-checker"
        assert newest["details"]["compared"] == 50 and newest["details"]["agreement"] == 0.999
        wait_until(lambda: inspect_once(url)[1]["model"]["version"] == 2)
        asked = fake.asked
        wait_until(lambda: fake.asked >= asked + 3)
        assert len(_history(url)) == 3  # candidate, shadow, then one promotion only


def test_the_history_names_the_token_that_moved_an_alias(
    tiny_registry: Registry, data: Path
) -> None:
    token = new_token()
    entry = TokenEntry(name="ops", sha256=hash_token(token), scopes=(Scope.ADMIN, Scope.READ))
    settings = _settings(tiny_registry, data, tokens=[entry])
    with serve_app(create_app(settings)) as url:
        auth = {"Authorization": f"Bearer {token}"}
        r = HTTP.put(url + "/v1/models/tiny/aliases/candidate", json={"version": 2}, headers=auth)
        assert r.status_code == 200 and r.json()["previous"] is None
        items = HTTP.get(url + "/v1/models/tiny/history", headers=auth).json()["items"]
        assert [(i["alias"], i["to_version"], i["actor"]) for i in items] == [
            ("candidate", 2, "token:ops")
        ]
        assert HTTP.get(url + "/v1/models/tiny/history").status_code == 401


def test_move_alias_records_real_moves_only(tiny_registry: Registry, store: Store) -> None:
    assert move_alias(tiny_registry, store, "tiny", "production", 1, "t", "manual") == 1
    assert history(store, "tiny") == []  # already there: nothing moved, nothing recorded
    with pytest.raises(ValueError, match="reason"):
        move_alias(tiny_registry, store, "tiny", "production", 2, "t", "")
    assert tiny_registry.aliases("tiny") == {"production": 1}
    with pytest.raises(ModelNotFound):
        move_alias(tiny_registry, store, "tiny", "production", 9, "t", "manual")
    assert move_alias(tiny_registry, store, "tiny", "candidate", 2, "t", "manual") is None
    assert [(r.alias, r.from_version, r.to_version) for r in history(store, "tiny")] == [
        ("candidate", None, 2)
    ]
