"""A real API for the operator page's browser tests (tests/e2e/test_operator_page.py):
tokens for an admin and an operator, the tiny model in production and a gated candidate,
captured frames waiting for a label, and job rows as a worker leaves them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from service.api.app import create_app
from service.auth.tokens import Scope, TokenEntry, hash_token, new_token
from service.config import Settings, load_settings
from service.gate.escape import Rate
from service.gate.rules import GateReport, GateRules, judge
from service.gate.scoring import ModelScore, RateFigure
from service.jobs.repository import repository
from service.jobs.schema import JobKind, JobState
from service.jobs.spec import JobRequest
from service.registry import Registry, write_card
from tests.conftest import defect_image, encode
from tests.support.http import HTTP
from tests.support.servers import serve_app, wait_until
from tests.support.tiny_onnx import write_artefact

ADMIN = new_token()
OPERATOR = new_token()  # labels and reads, may not promote
TOKENS = [
    TokenEntry(name="admin", sha256=hash_token(ADMIN), scopes=tuple(Scope)),
    TokenEntry(name="operator", sha256=hash_token(OPERATOR), scopes=(Scope.LABEL, Scope.READ)),
]
FRAMES = 6
DATASET = "line-a"
#: Shadow every frame where this build has shadow serving (the candidate is shadowed).
SHADOW = {"shadow_fraction": 1.0} if "shadow_fraction" in Settings.model_fields else {}
#: Answers the page expects while a route is missing from this build, or by contract
#: (no shadow running): the browser logs each as a console error, anything else fails.
EXPECTED_404 = re.compile(r"/v1/(lines|models/tiny/(shadow|history))\b.* 404")


@dataclass
class Site:
    url: str
    shots: Path


def _score(model: str, map50: float, escape: tuple[int, int], b8: float) -> ModelScore:
    return ModelScore(
        model=model,
        path=f"/registry/{model}",
        map50=map50,
        map50_95=map50 / 2,
        per_class_ap50={},
        per_class_ap50_95={},
        thresholds={"scratch": 0.5, "dent": 0.5},
        fail_classes=None,
        escape={"scratch": RateFigure.of(Rate(*escape)), "dent": RateFigure.of(Rate(0, 8))},
        false_reject=RateFigure.of(Rate(1, 12)),
        latency_ms={"b1": 1.2, "b8": b8},
        latency_runs=20,
        num_images=40,
    )


def _registry(tmp: Path) -> Registry:
    """tiny v1 in production, v2 the gated candidate (its card carries the report)."""
    reg = Registry(tmp / "registry")
    reg.root.mkdir()
    reg.register(write_artefact(tmp / "a1"), "tiny", alias="production")
    v2 = reg.register(write_artefact(tmp / "a2"), "tiny", alias="candidate")
    cand, prod = _score("tiny:2", 0.81, (1, 20), 3.1), _score("tiny:1", 0.78, (2, 20), 3.0)
    report = GateReport(
        passed=True,
        created="2026-12-06T21:00:00+00:00",
        golden="/data/snapshots/line-a/golden",
        golden_fingerprint="0" * 16,
        golden_images=40,
        golden_ok_images=12,
        rules=GateRules(),
        results=judge(cand, prod, GateRules()),
        candidate=cand,
        production=prod,
    )
    write_card(v2.path, {**v2.card, "gate": report.model_dump(mode="json")})
    return reg


def _jobs(settings: Any) -> None:
    """A running job with progress, a queued one and a finished one, as a worker leaves
    them (the jobs table is the one the API reads)."""
    repo = repository(settings)
    for epochs in (30, 40, 50):
        repo.submit(
            JobRequest(kind=JobKind.TRAIN, params={"data": "d.yaml", "epochs": epochs}), None, {}
        )
    done = repo.claim("worker-1", 60)
    assert done is not None
    repo.finish(
        done.id, "worker-1", JobState.SUCCEEDED, result={"best": {"epoch": 28, "map50": 0.74}}
    )
    running = repo.claim("worker-1", 600)
    assert running is not None
    progress = {"epoch": 12, "epochs": 40, "metrics": {"map50": 0.61}, "eta_s": 840.0}
    repo.renew(running.id, "worker-1", 600, progress=progress)


def api(
    site: Site,
    method: str,
    path: str,
    token: str = ADMIN,
    headers: dict[str, str] | None = None,
    **kw: Any,
) -> httpx.Response:
    auth = {"Authorization": f"Bearer {token}", **(headers or {})}
    return HTTP.request(method, site.url + path, headers=auth, **kw)


@contextmanager
def serve_site(tmp: Path) -> Iterator[Site]:
    """The API with tokens, the gated candidate, job rows and FRAMES captured frames
    waiting for a label (the tiny model's answers, kept by a random sampler)."""
    settings = load_settings(
        None,
        registry_root=_registry(tmp).root,
        models=["tiny"],
        warmup_runs=1,
        registry_poll_s=0.05,
        data_root=tmp / "data",
        tokens=TOKENS,
        score_threshold=0.5,
        capture_samplers=[
            {"name": "random", "kind": "random", "fraction": 1.0, "dataset": DATASET}
        ],
        capture_min_free_bytes=0,
        grafana_url="http://grafana.example/d/lineinspect",
        **SHADOW,
    )
    _jobs(settings)
    with serve_app(create_app(settings)) as url:
        s = Site(url, tmp / "shots")
        s.shots.mkdir()
        for i in range(FRAMES):  # a bright 'defect' at a different place each time
            x, y = 20 + 12 * i, 30 + 4 * i
            img = encode(defect_image(box=(x, y, x + 40, y + 36)), "PNG")
            params = {"line": f"L{1 + i % 2}", "camera": f"c{1 + i % 3}"}
            png = {"Content-Type": "image/png"}
            r = api(s, "POST", "/v1/inspect", content=img, params=params, headers=png)
            assert r.status_code == 200, r.text
        wait_until(lambda: waiting(s)["total"] == FRAMES)
        yield s


def waiting(site: Site) -> dict[str, Any]:
    r = api(site, "GET", "/v1/samples", params={"state": "unlabelled"})  # every dataset
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body
