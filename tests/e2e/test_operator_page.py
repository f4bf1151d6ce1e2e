"""The operator page (/ui) in a real headless Chromium against a real server: a tiny
model answers frames, capture keeps them, the operator labels them in the browser and
the labels are read back through the API; promotion needs the admin scope; every view
renders without console errors at 1280x800 and 1024x768.

Screenshots go to the test's temp dir; with ``UI_SCREENSHOTS_DIR=docs/img`` the ones
docs/operator.md shows are written there too (regenerates them).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from tests.support.browser import chromium, console_errors, wait_for
from tests.support.operator_site import (
    ADMIN,
    DATASET,
    EXPECTED_404,
    FRAMES,
    OPERATOR,
    Site,
    api,
    serve_site,
    waiting,
)

SHOTS = os.environ.get("UI_SCREENSHOTS_DIR")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with serve_site(tmp_path_factory.mktemp("operator-page")) as s:
        yield s


def shot(driver: WebDriver, site: Site, name: str) -> None:
    """Save a screenshot (and into UI_SCREENSHOTS_DIR when set: docs/operator.md's)."""
    png = driver.get_screenshot_as_png()
    (site.shots / f"operator-{name}.png").write_bytes(png)
    if SHOTS:  # committed: a 128-colour palette keeps them small
        small = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=128)
        small.save(Path(SHOTS) / f"operator-{name}.png", optimize=True)


def sign_in(driver: WebDriver, site: Site, token: str, view: str = "queue") -> None:
    """Open the page, which asks for a token since tokens are configured, and give it."""
    driver.get(f"{site.url}/ui#/{view}")
    field = wait_for(driver, "#token-input")
    field.send_keys(token)
    driver.find_element("css selector", "#token-submit").click()
    wait_for(driver, "#token-name")


def sample_of(site: Site, sha256: str) -> dict[str, Any]:
    r = api(site, "GET", f"/v1/samples/{sha256}", params={"dataset": DATASET})
    assert r.status_code == 200, r.text
    sample: dict[str, Any] = r.json()
    return sample


def state_of(site: Site, sha256: str) -> str:
    return str(sample_of(site, sha256)["state"])


def current_label(site: Site, sha256: str) -> dict[str, Any]:
    sample = sample_of(site, sha256)
    return next(v for v in sample["labels"] if v["version"] == sample["label_version"])


def next_frame(driver: WebDriver, after: str) -> str:
    """The sha256 of the frame the label view opened after ``after`` (once loaded)."""
    ready = "section.view-label[data-ready='true']"
    sha = wait_for(driver, f"{ready}:not([data-sha256='{after}'])").get_attribute("data-sha256")
    assert sha and driver.current_url.endswith(sha)
    return sha


def test_label_frames_by_dragging_and_keyboard(site: Site) -> None:
    with chromium(1280, 800) as driver:
        sign_in(driver, site, OPERATOR)
        count = wait_for(driver, "#queue-count")
        assert count.text == f"{FRAMES} waiting for a label"
        assert len(driver.find_elements("css selector", "tr.queue-row")) == FRAMES
        shot(driver, site, "queue")

        row = driver.find_element("css selector", "tr.queue-row")
        sha = row.get_attribute("data-sha256")
        assert sha
        row.click()
        wait_for(driver, "section.view-label[data-ready='true']")
        sample = api(site, "GET", f"/v1/samples/{sha}", params={"dataset": DATASET}).json()
        predicted = sample["prediction"]
        assert predicted, "the tiny model found the bright rectangle"
        target = len(predicted) - 1  # drawn last: on top, its centre is its own
        rect = driver.find_element("css selector", f"g.box[data-index='{target}'] rect.box-rect")
        layer = driver.find_element("css selector", "#box-layer")
        scale = layer.size["width"] / sample["width"]  # CSS px per image px
        x1, y1, x2, y2 = predicted[target]["box"]
        dx = min(25.0, sample["width"] - x2 - 1)
        dy = min(15.0, sample["height"] - y2 - 1)
        chain = ActionChains(driver).move_to_element(rect).click_and_hold()
        for _ in range(5):  # a drag in steps, as a hand does
            chain.move_by_offset(round(dx * scale / 5), round(dy * scale / 5))
        chain.release().perform()
        moved = [x1 + dx, y1 + dy, x2 + dx, y2 + dy]
        classes = api(site, "GET", f"/v1/datasets/{DATASET}").json()["classes"]
        driver.find_element("css selector", "body").send_keys("2")  # the second class
        selected = wait_for(driver, "g.box.selected")
        assert selected.get_attribute("data-label") == classes[1]
        shot(driver, site, "label")
        driver.find_element("css selector", "body").send_keys(Keys.ENTER)  # accept, next
        other = next_frame(driver, sha)

        label = current_label(site, sha)
        assert label["state"] == "labelled" and label["origin"] == "prediction-changed"
        assert label["author"] == "ui:operator"
        assert len(label["boxes"]) == len(predicted)
        saved = label["boxes"][target]
        assert saved["label"] == classes[1]
        assert all(abs(a - b) <= 1.0 for a, b in zip(saved["box"], moved, strict=True)), (
            saved,
            moved,
        )

        driver.find_element("css selector", "#mark-ok").click()
        third = next_frame(driver, other)
        assert state_of(site, other) == "ok"
        assert current_label(site, other)["origin"] == "prediction-changed"  # boxes said defect

        # Delete drops the selected (first) box; Enter saves the rest
        before = len(sample_of(site, third)["prediction"])
        body = driver.find_element("css selector", "body")
        body.send_keys(Keys.DELETE)
        wait_for(
            driver,
            "#box-list",
            check=lambda el: len(el.find_elements("css selector", "li")) == before - 1,
        )
        body.send_keys(Keys.ENTER)
        fourth = next_frame(driver, third)
        label = current_label(site, third)
        expected = "ok" if before == 1 else "labelled"  # no box left: no defect
        assert label["state"] == expected and label["origin"] == "prediction-changed"
        assert len(label["boxes"]) == before - 1

        driver.find_element("css selector", "body").send_keys(Keys.ENTER)  # unchanged
        next_frame(driver, fourth)
        label = current_label(site, fourth)
        assert label["origin"] == "prediction"
        assert [b["box"] for b in label["boxes"]] == [
            d["box"] for d in sample_of(site, fourth)["prediction"]
        ]
        assert waiting(site)["total"] == FRAMES - 4
        errors = console_errors(driver, lambda m: bool(EXPECTED_404.search(m)))
        assert errors == []


def test_promotion_needs_the_admin_scope(site: Site) -> None:
    promote = "#promote-tiny-2"
    with chromium(1280, 800) as driver:
        sign_in(driver, site, OPERATOR, view="models")
        button = wait_for(driver, promote)
        assert not button.is_enabled()
        shadow = api(site, "GET", "/v1/models/tiny/shadow", OPERATOR)
        if shadow.status_code == 200:  # the candidate runs in shadow
            assert shadow.json()["shadow_version"] == 2
            assert "production v1 vs shadow v2" in wait_for(driver, ".shadow table").text
        else:
            assert shadow.status_code == 404 and wait_for(driver, ".shadow .notice-unavailable")
        assert "admin" in button.get_attribute("title")
        refused = api(
            site, "PUT", "/v1/models/tiny/aliases/production", OPERATOR, json={"version": 2}
        )
        assert refused.status_code == 403 and refused.json()["error"] == "forbidden"

        driver.find_element("css selector", "#forget-token").click()
        field = wait_for(driver, "#token-input")
        field.send_keys(ADMIN)
        driver.find_element("css selector", "#token-submit").click()
        wait_for(driver, "#gate-v2")
        wait_for(driver, promote, check=lambda el: el.is_enabled()).click()
        shot(driver, site, "models")
        wait_for(driver, f"{promote}-confirm").click()
        wait_for(driver, "#flash-tiny", check=lambda el: "production is v2" in el.text)
        assert api(site, "GET", "/v1/models/tiny").json()["aliases"]["production"] == 2

        history = api(site, "GET", "/v1/models/tiny/history")
        if history.status_code == 404:  # this build has no promotion history: a note says so
            wait_for(driver, ".history .notice-unavailable")
            assert driver.find_elements("css selector", "#rollback-tiny") == []
            return
        # the lineage reloaded: the move is in the history; roll it back
        wait_for(driver, ".history tbody tr", check=lambda el: "manual" in el.text)
        wait_for(driver, "#rollback-tiny").click()
        wait_for(driver, "#rollback-tiny-confirm").click()
        wait_for(driver, "#flash-tiny", check=lambda el: "production is v1" in el.text)
    assert api(site, "GET", "/v1/models/tiny").json()["aliases"]["production"] == 1
    items = api(site, "GET", "/v1/models/tiny/history").json()["items"]
    assert [(i["alias"], i["to_version"]) for i in items[:2]] == [
        ("production", 1),
        ("production", 2),
    ]


VIEWS = ("queue", "label", "lines", "models", "jobs")


@pytest.mark.parametrize("width,height", [(1280, 800), (1024, 768)])
def test_every_view_renders_without_console_errors(site: Site, width: int, height: int) -> None:
    with chromium(width, height) as driver:
        sign_in(driver, site, ADMIN)
        first = wait_for(driver, "tr.queue-row").get_attribute("data-sha256")
        ready = {
            "queue": "#queue-count",
            "label": "section.view-label[data-ready='true']",
            "lines": "#lines-body .notice, #lines-table",
            "models": "#gate-v2",
            "jobs": "#jobs-running",
        }
        for view in VIEWS:
            hash_ = f"label/{DATASET}/{first}" if view == "label" else view
            driver.get(f"{site.url}/ui#/{hash_}")
            wait_for(driver, ready[view])
            wide = driver.execute_script("return document.documentElement.scrollWidth")
            assert wide <= width, f"{view}: {wide} px wide in a {width} px window"
            if width == 1280 and view in ("lines", "jobs"):
                shot(driver, site, view)
        # the queue's filters: the count is what the API counts under them
        driver.get(f"{site.url}/ui#/queue")
        wait_for(driver, "#queue-count")
        driver.find_element("css selector", "#filter-camera").send_keys("c1")
        driver.find_element("css selector", "#queue-apply").click()
        q = {"state": "unlabelled", "camera": "c1"}
        total = api(site, "GET", "/v1/samples", params=q).json()["total"]
        wait_for(driver, "#queue-count", check=lambda el: el.text == f"{total} waiting for a label")
        cams = [
            r.find_elements("css selector", "td")[3].text
            for r in driver.find_elements("css selector", "tr.queue-row")
        ]
        assert cams == ["c1"] * total
        errors = console_errors(driver, lambda m: bool(EXPECTED_404.search(m)))
        assert errors == [], errors


def test_lines_view_shows_the_audit_figures_or_says_they_are_missing(site: Site) -> None:
    lines = api(site, "GET", "/v1/lines", OPERATOR, params={"window_s": 3600})
    with chromium(1280, 800) as driver:
        sign_in(driver, site, OPERATOR, view="lines")
        assert (
            wait_for(driver, "#grafana-link")
            .get_attribute("href")
            .startswith("http://grafana.example/")
        )
        if lines.status_code == 404:  # no audit trail in this build
            assert "not available" in wait_for(driver, "#lines-body .notice-unavailable").text
            return
        assert lines.status_code == 200, lines.text
        expected = {row["line"]: row["frames"] for row in lines.json()["lines"]}
        assert sum(expected.values()) >= FRAMES
        wait_for(driver, "#lines-table")
        shown = {
            tr.find_element("css selector", "td").text: int(
                tr.find_elements("css selector", "td")[1].text
            )
            for tr in driver.find_elements("css selector", "#lines-table tr.line-row")
        }
        assert shown == expected


def test_start_a_pipeline_from_the_jobs_view(site: Site) -> None:
    first = waiting(site)["items"][0]  # a pipeline snapshots labelled samples: label one
    boxes = [{"box": d["box"], "label": d["label"]} for d in first["prediction"]]
    put = api(site, "PUT", f"/v1/samples/{first['sha256']}/labels", json={"boxes": boxes})
    assert put.status_code == 200, put.text
    with chromium(1280, 800) as driver:
        sign_in(driver, site, ADMIN, view="jobs")
        wait_for(driver, "#pipeline-dataset option[value='line-a']")
        wait_for(driver, "#pipeline-start").click()
        status = wait_for(driver, "#pipeline-status", check=lambda el: bool(el.text))
        pipelines = api(site, "GET", "/v1/jobs", params={"kind": "pipeline"}).json()["jobs"]
        if not pipelines:  # refused (this build has no pipeline kind): the page says why
            body = {"kind": "pipeline", "params": {"lineage": "tiny", "dataset": DATASET}}
            refused = api(site, "POST", "/v1/jobs", json=body)
            assert refused.status_code == 400, refused.text
            assert status.text == f"Not started: {refused.json()['message']}"
            return
        job = pipelines[0]
        assert status.text == f"Pipeline job #{job['id']} is {job['state']}."
        assert job["params"] == {"lineage": "tiny", "dataset": DATASET}
