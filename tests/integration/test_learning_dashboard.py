"""A real Prometheus scrapes a real ``lineinspect worker train`` (running a tiny train
job to success) and the API, and evaluates every learning-loop panel's query without
error; the panels of ``ROWS_WITH_DATA`` must have data."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.api.app import create_app
from service.config import load_settings
from service.registry import Registry
from tests.support.http import HTTP
from tests.support.prometheus import DASHBOARDS, GRAFANA_VARS, Prometheus, panel_queries
from tests.support.servers import serve_app, wait_until
from tests.support.tiny_dataset import tiny_train_params, write_tiny_dataset
from tests.support.trainers import TrainerProcess

LEARNING = DASHBOARDS / "learning-loop.json"
#: Rows whose every panel must have data here. The other rows' metrics come from other
#: branches: the coordinator adds "Gate" (training worker), "Promotion", "Shadow" and
#: "Audit" (API) as each lands (both processes are scraped below).
ROWS_WITH_DATA = ["Training", "Promotion", "Shadow", "Audit"]
EPOCHS = 6  # long enough for 1 s scrapes to see the running job's progress


def row_of_panels() -> dict[str, str]:
    """Panel title → its row's title."""
    out, row = {}, ""
    for p in json.loads(LEARNING.read_text())["panels"]:
        if p["type"] == "row":
            row = p["title"]
        else:
            out[p["title"]] = row
    return out


@pytest.fixture
def api(tiny_registry: Registry, tmp_path: Path) -> Iterator[str]:
    settings = load_settings(
        None,
        registry_root=tiny_registry.root,
        models=["tiny"],
        warmup_runs=1,
        data_root=tmp_path / "var",
        trainer="off",
    )
    with serve_app(create_app(settings)) as url:
        yield url


def test_learning_loop_panels_evaluate_and_training_panels_have_data(
    api: str, tmp_path: Path
) -> None:
    data = write_tiny_dataset(tmp_path / "ds")
    r = HTTP.post(
        f"{api}/v1/jobs", json={"kind": "train", "params": tiny_train_params(data, EPOCHS)}
    )
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    trainer = TrainerProcess("t", tmp_path / "var", tmp_path, trainer_poll_s=0.2, trainer_threads=1)
    prom = None
    try:
        wait_until(trainer.is_ready, timeout=60)
        prom = Prometheus(
            tmp_path / "prom",
            {"lineinspect-api": api[7:], "lineinspect-trainer": trainer.url[7:]},
        )
        wait_until(lambda: prom.targets_up(2), timeout=60, interval=0.2)

        def job_state() -> str:
            return str(HTTP.get(f"{api}/v1/jobs/{job_id}").json()["state"])

        wait_until(lambda: job_state() in {"succeeded", "failed"}, timeout=180, interval=0.2)
        assert job_state() == "succeeded", trainer.log()[-3000:]

        def seen(query: str) -> bool:
            return bool(prom.api("query", query=query)["result"])

        # The running job's progress was scraped, and its success.
        wait_until(
            lambda: (
                seen(f"max_over_time(lineinspect_training_epochs_planned[5m]) == {EPOCHS}")
                and seen(
                    'lineinspect_training_jobs_finished_total{kind="train",state="succeeded"} == 1'
                )
                and seen('lineinspect_training_jobs{state="succeeded"} == 1')
            ),
            timeout=30,
            interval=0.2,
        )
        queries = panel_queries(LEARNING, {**GRAFANA_VARS, "$__rate_interval": "1m"})
        rows = row_of_panels()
        assert set(rows.values()) >= set(ROWS_WITH_DATA) and len(queries) >= 20
        required = [(t, e) for t, e in queries if rows[t] in ROWS_WITH_DATA]
        assert len(required) >= 6
        prom.without_data(queries)  # every query evaluates without error
        with contextlib.suppress(TimeoutError):  # the assertion below names what is missing
            wait_until(lambda: not prom.without_data(required), timeout=30, interval=0.5)
        empty = prom.without_data(required)
        assert not empty, "training panels without data:\n" + "\n".join(empty)
        # The finished job shows in "Jobs finished by outcome".
        (finished,) = [e for t, e in queries if t == "Jobs finished by outcome"]
        series = prom.api("query", query=finished.replace("[1m]", "[5m]"))["result"]
        by_label = {
            (s["metric"]["kind"], s["metric"]["state"]): float(s["value"][1]) for s in series
        }
        assert by_label[("train", "succeeded")] > 0 and by_label[("train", "failed")] == 0
    finally:
        if prom is not None:
            prom.stop()
        trainer.stop()
