"""The trigger loop on a real data store and jobs table (SQLite and PostgreSQL): it
counts the labels since the dataset's last snapshot, fires after N (and not before),
respects M per class, and a lineage never gets two live pipelines, even when two
workers' loops race on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service.config import Settings, load_settings
from service.errors import Conflict
from service.jobs.repository import JobRepository, repository
from service.jobs.spec import JobRequest, resolve_request
from service.jobs.triggers import TriggerLoop
from service.registry import Registry
from service.store import Store, datasets, importer, snapshots
from tests.support.datasets import yolo_folder
from tests.support.postgres_server import postgres_server
from tests.support.stores import store

__all__ = ["postgres_server", "store"]  # fixtures

LINEAGE = "parts-student"


def _settings(st: Store, tiny_registry: Registry, **trigger: Any) -> Settings:
    url = st.engine.url.render_as_string(hide_password=False)
    spec = {"dataset": "parts", "debounce_s": 0, "min_interval_s": 0, **trigger}
    return load_settings(
        None,
        registry_root=tiny_registry.root,
        models=["tiny"],
        data_root=st.data_root,
        database_url=None if url.startswith("sqlite") else url,
        triggers={LINEAGE: spec},
    )


def _add(st: Store, tmp: Path, n: int, seed: int) -> None:
    summary = importer.run(st, yolo_folder(tmp / f"in-{seed}", n, seed), "parts", "yolo")
    assert summary.added == n, summary.line()


def _snapshot(st: Store) -> None:
    with st.transaction() as s:
        snapshots.create(s, st.blobs, datasets.get(s, "parts"), st.snapshots_root)


@pytest.fixture
def repo(store: Store, tiny_registry: Registry) -> Iterator[JobRepository]:
    r = repository(_settings(store, tiny_registry, min_new_labels=1), store.engine)
    yield r


def test_fires_after_n_new_labels_since_the_last_snapshot_and_not_before(
    store: Store, repo: JobRepository, tiny_registry: Registry, tmp_path: Path
) -> None:
    _add(store, tmp_path, 6, seed=0)
    _snapshot(store)  # what was there is trained on: only later labels count
    loop = TriggerLoop(_settings(store, tiny_registry, min_new_labels=5), repo, store)
    _add(store, tmp_path, 4, seed=1)
    assert loop.poll() == []
    _add(store, tmp_path, 1, seed=2)
    queued = loop.poll()
    assert len(queued) == 1
    job = repo.get(queued[0])
    assert job.kind == "pipeline" and job.params["lineage"] == LINEAGE
    assert job.snapshot and job.snapshot.startswith("store:")
    # live: no second pipeline for the lineage, whatever else comes in
    _add(store, tmp_path, 5, seed=3)
    assert TriggerLoop(loop.settings, repo, store).poll() == []
    # a manual pipeline for other work while one is live: 409
    req = JobRequest(kind="pipeline", params={"lineage": LINEAGE, "dataset": "parts"})
    snap, base = resolve_request(req, tiny_registry, store)
    with pytest.raises(Conflict, match="one pipeline at a time"):
        repo.submit(req, snap, base)


def test_min_per_class_holds_the_trigger_back(
    store: Store, repo: JobRepository, tiny_registry: Registry, tmp_path: Path
) -> None:
    _add(store, tmp_path, 3, seed=0)
    _snapshot(store)
    with store.transaction() as s:
        assert snapshots.new_labels(s, datasets.get(s, "parts")).count == 0
    _add(store, tmp_path, 3, seed=5)
    with store.transaction() as s:
        new = snapshots.new_labels(s, datasets.get(s, "parts"))
    assert new.count == 3 and sum(new.per_class.values()) >= 3
    most = max(new.per_class.values())
    strict = TriggerLoop(
        _settings(store, tiny_registry, min_new_labels=1, min_per_class=most + 1), repo, store
    )
    assert strict.poll() == []
    fits = min(new.per_class.values())
    loose = TriggerLoop(
        _settings(store, tiny_registry, min_new_labels=1, min_per_class=fits), repo, store
    )
    assert len(loose.poll()) == 1


@pytest.mark.parametrize("store", ["postgresql"], indirect=True)
def test_two_workers_racing_queue_one_pipeline(
    store: Store, repo: JobRepository, tiny_registry: Registry, tmp_path: Path
) -> None:
    _add(store, tmp_path, 4, seed=0)
    settings = _settings(store, tiny_registry, min_new_labels=2)
    loops = [TriggerLoop(settings, repository(settings), store) for _ in range(4)]
    start = threading.Barrier(len(loops))
    queued: list[int] = []

    def poll(loop: TriggerLoop) -> None:
        start.wait()
        queued.extend(loop.poll())

    threads = [threading.Thread(target=poll, args=(lp,)) for lp in loops]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(queued) == 1
    assert len(repo.pipelines(LINEAGE, limit=10)) == 1
    for lp in loops:
        lp.repo.engine.dispose()
