"""The data REST routes on a real server: upload, labels, listings, images; every bad
input answered 4xx with the store unchanged; the Label Studio round trip and webhook."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service.api.app import create_app
from service.config import load_settings
from service.registry import Registry
from service.store import Store, labelstudio
from tests.support.datasets import CLASSES, png
from tests.support.http import HTTP
from tests.support.servers import serve_app
from tests.support.stores import state

BOXES = [
    {"box": [4.0, 6.0, 30.5, 40.25], "label": "bright"},
    {"box": [33, 2, 60, 21], "label": "dark"},
]


@pytest.fixture
def api(tiny_registry: Registry, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    settings = load_settings(
        None,
        registry_root=tiny_registry.root,
        models=["tiny"],
        warmup_runs=1,
        data_root=tmp_path / "data",
        label_studio_webhook_secret="hook-secret",
    )
    with serve_app(create_app(settings)) as url:
        yield url, tmp_path / "data"


def _upload(url: str, data: bytes, labels: Any, **form: str) -> Any:
    fields = {"labels": json.dumps(labels), **form}
    return HTTP.post(
        f"{url}/v1/datasets/d/samples", files={"image": ("x.png", data, "image/png")}, data=fields
    )


def _state(root: Path) -> tuple[int, int, int]:
    st = Store(root)
    try:
        return state(st)
    finally:
        st.close()


def test_upload_label_list_and_image(api: tuple[str, Path]) -> None:
    url, _ = api
    r = _upload(url, png(1), BOXES, classes=json.dumps(CLASSES), line="L1", camera="c3")
    assert r.status_code == 201, r.text
    sha = r.json()["sha256"]
    assert r.json()["outcome"] == "added" and r.json()["state"] == "labelled"
    assert _upload(url, png(1), BOXES).json()["outcome"] == "duplicate"
    ok = _upload(url, png(2), {"ok": True})
    assert ok.status_code == 201 and ok.json()["state"] == "ok"
    r = HTTP.put(f"{url}/v1/samples/{sha}/labels", json={"boxes": BOXES[:1], "author": "ann"})
    assert r.status_code == 200 and r.json()["changed"] is True and r.json()["label_version"] == 2
    r = HTTP.put(f"{url}/v1/samples/{sha}/labels", json={"boxes": BOXES[:1], "author": "ann"})
    assert r.json()["changed"] is False
    hist = HTTP.get(f"{url}/v1/samples/{sha}").json()["labels"]
    assert [h["version"] for h in hist] == [1, 2] and hist[1]["author"] == "ann"
    d = HTTP.get(f"{url}/v1/datasets/d").json()
    assert d["samples"] == 2 and d["states"] == {"labelled": 1, "ok": 1}
    assert d["per_class"]["bright"] == {"boxes": 1, "images": 1}
    assert sum(d["splits"].values()) == 2
    assert [x["name"] for x in HTTP.get(f"{url}/v1/datasets").json()] == ["d"]
    page = HTTP.get(f"{url}/v1/samples", params={"dataset": "d", "line": "L1"}).json()
    assert page["total"] == 1 and page["items"][0]["sha256"] == sha
    assert HTTP.get(f"{url}/v1/samples", params={"state": "ok", "limit": 1}).json()["total"] == 1
    img = HTTP.get(f"{url}/v1/samples/{sha}/image")
    assert img.status_code == 200 and img.content == png(1)
    assert img.headers["content-type"] == "image/png"


def test_every_bad_input_is_a_4xx_and_changes_nothing(api: tuple[str, Path]) -> None:
    url, root = api
    sha = _upload(url, png(1), BOXES, classes=json.dumps(CLASSES)).json()["sha256"]
    before = _state(root)

    def put(target: str, body: Any) -> Any:
        return HTTP.put(f"{url}/v1/samples/{target}/labels", json=body)

    def bad_box(box: list[int], label: str = "dark") -> Any:
        return _upload(url, png(3), [{"box": box, "label": label}])

    no_classes = {"image": ("x.png", png(3), "image/png")}
    cases = [
        (_upload(url, b"\x89PNG\r\n\x1a\ncorrupt", BOXES), 400, "invalid_image"),
        (bad_box([1, 1, 99, 9]), 400, "outside"),
        (bad_box([5, 5, 5, 9]), 400, "zero or negative"),
        (bad_box([1, 1, 9, 9], "rust"), 400, "known classes: ['bright', 'dark']"),
        (_upload(url, png(3), "not-a-list"), 400, "list of boxes"),
        (HTTP.post(f"{url}/v1/datasets/new/samples", files=no_classes), 400, "class list"),
        (put("0" * 64, {"ok": True}), 404, "no sample"),
        (put("nothex", {"ok": True}), 400, "not a sha256"),
        (put(sha, {"ok": True, "rejected": True}), 400, "exactly one"),
        (put(sha, {"boxes": [{"box": [1, 1, 2, 2], "label": "x"}]}), 400, "unknown class"),
        (HTTP.get(f"{url}/v1/datasets/nope"), 404, "no dataset"),
        (HTTP.get(f"{url}/v1/samples", params={"state": "weird"}), 400, "state must be"),
        (HTTP.get(f"{url}/v1/samples/{'1' * 64}/image"), 404, "no sample"),
        (HTTP.post(f"{url}/v1/integrations/label-studio", json={}), 401, "X-Lineinspect-Secret"),
    ]
    for resp, status, text in cases:
        assert resp.status_code == status, (resp.status_code, resp.text)
        body = resp.json()
        assert text in body["message"] or text == body["error"], body
        assert set(body) == {"error", "message", "request_id"}
    assert _state(root) == before


def _as_label_studio_would(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Edit exported tasks as Label Studio's export would show them: ids, an accepted
    prediction, a moved box, a cancelled newer annotation that must be skipped."""
    out = copy.deepcopy(tasks)
    for i, t in enumerate(out):
        t["id"] = 100 + i
        anns = t.pop("annotations", None) or []
        res = (
            copy.deepcopy(anns[0]["result"])
            if anns
            else copy.deepcopy(t["predictions"][0]["result"])
        )
        for r in res:
            r["origin"] = "prediction" if not anns else "manual"
            r.pop("score", None)
        if i == 0:
            res[0]["value"]["x"] += 5.0  # the annotator moved the first box right by 5 %
            res[0]["origin"] = "prediction-changed"
        t["annotations"] = [
            {
                "id": 500 + i,
                "result": res,
                "was_cancelled": False,
                "completed_by": 7,
                "created_at": "2026-12-04T10:00:00Z",
                "updated_at": "2026-12-04T10:00:00Z",
            },
            {
                "id": 900 + i,
                "result": [],
                "was_cancelled": True,
                "created_at": "2026-12-04T11:00:00Z",
                "updated_at": "2026-12-04T11:00:00Z",
            },
        ]
    return out


def test_label_studio_round_trip_within_half_a_pixel(tmp_path: Path) -> None:
    st = Store(tmp_path / "data")
    try:
        from service.store import datasets, intake, labels, samples

        with st.transaction() as s:
            ds, _ = datasets.get_or_create(s, "d", CLASSES, 0.2)
            a, _ = intake.take(
                s,
                st.blobs,
                ds,
                intake.Item(data=png(1, 97), boxes=BOXES, state="labelled"),
                st.max_pixels,
            )
            pred = [{**b, "score": 0.8} for b in BOXES]
            b, _ = intake.take(
                s,
                st.blobs,
                ds,
                intake.Item(data=png(2, 61), source="capture", prediction=pred, model_ref="tiny:1"),
                st.max_pixels,
            )
            sha_a, sha_b = a.sha256, b.sha256
        tasks = labelstudio.export_tasks(st, "d", "http://li:8000", "label", "image")
        by_sha = {t["data"]["sha256"]: t for t in tasks}
        p = by_sha[sha_b]["predictions"][0]
        assert p["model_version"] == "tiny:1" and p["score"] == 0.8
        region = p["result"][0]
        assert region["type"] == "rectanglelabels" and region["from_name"] == "label"
        assert region["to_name"] == "image" and region["score"] == 0.8
        assert (region["original_width"], region["original_height"]) == (61, 61)
        assert region["value"]["rotation"] == 0 and region["value"]["rectanglelabels"] == ["bright"]
        assert abs(region["value"]["x"] - 100 * 4.0 / 61) < 1e-9
        assert (
            by_sha[sha_a]["data"]["image"] == f"http://li:8000/v1/samples/{sha_a}/image?dataset=d"
        )
        edited = _as_label_studio_would([by_sha[sha_a], by_sha[sha_b]])
        (tmp_path / "export.json").write_text(json.dumps(edited))
        from service.store import importer

        summary = importer.run(st, tmp_path / "export.json", "d", "labelstudio")
        assert (summary.added, summary.relabelled, summary.duplicates) == (0, 2, 0), summary.line()
        with st.transaction() as s:
            for sha, size, shift, origin in (
                (sha_a, 97, 0.05 * 97, "prediction-changed"),
                (sha_b, 61, 0.0, "prediction"),
            ):
                smp = samples.get(s, sha)
                cur = labels.current(s, smp)
                assert cur is not None and cur.origin == origin and smp.state == "labelled"
                assert cur.external_ref == f"ls-annotation:{500 if sha == sha_a else 501}"
                for got, want in zip(cur.boxes, BOXES, strict=True):
                    moved = [
                        want["box"][0] + shift,
                        want["box"][1],
                        want["box"][2] + shift,
                        want["box"][3],
                    ]
                    exp = moved if got is cur.boxes[0] else want["box"]
                    assert got["label"] == want["label"]
                    assert max(abs(g - e) for g, e in zip(got["box"], exp, strict=True)) < 0.5
                assert size
        config = labelstudio.label_config(CLASSES)
        assert (
            '<RectangleLabels name="label" toName="image">' in config
            and '<Label value="dark"/>' in config
        )
    finally:
        st.close()


def test_label_studio_webhook_is_idempotent(api: tuple[str, Path]) -> None:
    url, root = api
    sha = _upload(url, png(5), BOXES, classes=json.dumps(CLASSES)).json()["sha256"]
    task = {
        "id": 3,
        "data": {"image": f"{url}/v1/samples/{sha}/image?dataset=d", "sha256": sha, "dataset": "d"},
    }
    region = labelstudio.to_region(
        {"box": [10, 10, 20, 30], "label": "dark"}, 64, 64, "label", "image", 0
    )
    ann = {"id": 77, "result": [region], "was_cancelled": False, "completed_by": 2}
    hook = f"{url}/v1/integrations/label-studio"
    head = {"X-Lineinspect-Secret": "hook-secret"}
    event = {"action": "ANNOTATION_CREATED", "annotation": ann, "task": task}
    assert HTTP.post(hook, json=event, headers=head).json() == {
        "action": "ANNOTATION_CREATED",
        "changed": 1,
    }
    after_first = _state(root)
    assert HTTP.post(hook, json=event, headers=head).json()["changed"] == 0
    assert _state(root) == after_first
    updated = {**event, "action": "ANNOTATION_UPDATED", "annotation": {**ann, "result": []}}
    assert HTTP.post(hook, json=updated, headers=head).json()["changed"] == 1
    assert HTTP.get(f"{url}/v1/samples/{sha}").json()["state"] == "ok"
    assert HTTP.post(hook, json=updated, headers=head).json()["changed"] == 0
    deleted = {"action": "ANNOTATIONS_DELETED", "annotations": [{"id": 77}]}
    assert HTTP.post(hook, json=deleted, headers=head).json()["changed"] == 1
    assert HTTP.post(hook, json=deleted, headers=head).json()["changed"] == 0
    sample = HTTP.get(f"{url}/v1/samples/{sha}").json()
    assert sample["state"] == "unlabelled"
    assert [h["state"] for h in sample["labels"]] == ["labelled", "labelled", "ok", "unlabelled"]
    other = HTTP.post(hook, json={"action": "PROJECT_UPDATED"}, headers=head).json()
    assert other["ignored"] is True
    wrong = HTTP.post(hook, json=event, headers={"X-Lineinspect-Secret": "nope"})
    assert wrong.status_code == 401
