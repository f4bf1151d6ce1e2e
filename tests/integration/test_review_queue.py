"""The review queue's listing (GET /v1/samples, service/store/samples.py): captures
waiting for a label filtered by line, camera, sampler and predicted class, newest or
most uncertain first, on SQLite and PostgreSQL and through the REST route."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from service.api.app import create_app
from service.auth.tokens import Scope, TokenEntry, hash_token, new_token
from service.config import load_settings
from service.errors import InvalidInput
from service.registry import Registry
from service.store import Store, datasets, intake, samples
from tests.support.datasets import CLASSES, png
from tests.support.http import HTTP
from tests.support.postgres_server import postgres_server
from tests.support.servers import serve_app
from tests.support.stores import store

__all__ = ["postgres_server", "store"]  # the fixtures

#: (line, camera, sampler, scores of the predicted "bright" boxes); inserted in order.
CAPTURES: list[tuple[str, str, str, list[float]]] = [
    ("L1", "c1", "random", [0.9, 0.55]),
    ("L1", "c2", "near", [0.31]),
    ("L2", "c1", "random", []),
    ("L2", "c2", "flagged", [0.97]),
    ("L1", "c1", "near", [0.42, 0.8]),
]


def _capture(st: Store) -> list[str]:
    """The captures as capture writes them (prediction, sampler, majority class)."""
    out = []
    with st.transaction() as s:
        ds, _ = datasets.get_or_create(s, "caps", CLASSES, st.val_fraction)
        for i, (line, camera, sampler, scores) in enumerate(CAPTURES):
            pred = [{"box": [1.0, 1.0, 9.0, 9.0], "score": sc, "label": "bright"} for sc in scores]
            item = intake.Item(
                png(100 + i), source="capture", line=line, camera=camera, sampler=sampler,
                prediction=pred,
            )  # fmt: skip
            sample, _ = intake.take(s, st.blobs, ds, item, st.max_pixels)
            sample.capture_class = "bright" if pred else None
            s.flush()
            out.append(sample.sha256)
    return out


def _page(st: Store, shas: list[str], **kw: Any) -> tuple[list[int], int]:
    """Indexes into CAPTURES of one page of the waiting samples, and the total."""
    with st.transaction() as s:
        rows, total = samples.page(s, None, "unlabelled", **kw)
        return [shas.index(r.sha256) for r in rows], total


def test_filters_and_orders(store: Store) -> None:
    shas = _capture(store)
    assert _page(store, shas) == ([4, 3, 2, 1, 0], 5)  # newest first
    # the least confident predicted detection first; no detection last
    assert _page(store, shas, order="uncertain") == ([1, 4, 0, 3, 2], 5)
    assert _page(store, shas, order="uncertain", offset=1, limit=2) == ([4, 0], 5)
    assert _page(store, shas, camera="c1") == ([4, 2, 0], 3)
    assert _page(store, shas, line="L1", camera="c1", order="uncertain") == ([4, 0], 2)
    assert _page(store, shas, sampler="near", predicted_class="bright") == ([4, 1], 2)
    assert _page(store, shas, predicted_class="dark") == ([], 0)
    with pytest.raises(InvalidInput, match="order must be one of"):
        _page(store, shas, order="random")


def test_uncertainty_of_a_prediction() -> None:
    assert samples.uncertainty([{"score": 0.7}, {"score": 0.4}]) == 0.4
    assert samples.uncertainty([]) == math.inf and samples.uncertainty(None) == math.inf


def test_queue_over_rest(tiny_registry: Registry, tmp_path: Path) -> None:
    token = new_token()
    entry = TokenEntry(name="op", sha256=hash_token(token), scopes=(Scope.LABEL,))
    settings = load_settings(
        None,
        registry_root=tiny_registry.root,
        models=["tiny"],
        warmup_runs=1,
        data_root=tmp_path / "data",
        tokens=[entry],
    )
    st = Store(tmp_path / "data")
    try:
        shas = _capture(st)
    finally:
        st.close()
    auth = {"Authorization": f"Bearer {token}"}
    with serve_app(create_app(settings)) as url:
        q = {"state": "unlabelled", "order": "uncertain", "camera": "c2"}
        r = HTTP.get(f"{url}/v1/samples", params=q, headers=auth)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["total"] == 2 and [i["sha256"] for i in body["items"]] == [shas[1], shas[3]]
        assert [i["predicted_class"] for i in body["items"]] == ["bright", "bright"]
        bad = HTTP.get(f"{url}/v1/samples", params={"order": "sideways"}, headers=auth)
        assert bad.status_code == 422 and "order" in bad.json()["message"]
