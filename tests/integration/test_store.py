"""The data store on SQLite and on a real PostgreSQL server: migrations, samples and
label history, class lists, bad input leaving nothing behind, splits, snapshots."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

# the jobs and promotion-history tables share the store's metadata
import service.jobs.schema
import service.promotion.schema  # noqa: F401
from service.errors import InvalidImage, InvalidInput, StoreError
from service.store import Store, datasets, intake, labels, migrate, samples, snapshots
from service.store.schema import Base
from service.store.splits import split_of
from tests.support.datasets import CLASSES, png
from tests.support.postgres_server import postgres_server
from tests.support.stores import state, store

__all__ = ["postgres_server", "store"]  # the fixtures

BOX = {"box": [4.0, 6.0, 30.0, 40.0], "label": "bright"}


def _take(st: Store, item: intake.Item, add_classes: bool = False) -> tuple[str, str]:
    with st.transaction() as s:
        ds, _ = datasets.get_or_create(s, "d", CLASSES, st.val_fraction)
        sample, outcome = intake.take(s, st.blobs, ds, item, st.max_pixels, add_classes)
        return sample.sha256, outcome


def test_schema_is_migrated_and_matches_the_models(store: Store) -> None:
    assert store.revision == migrate.head_revision()
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_a_newer_schema_is_refused(store: Store) -> None:
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    url = None if store.engine.dialect.name == "sqlite" else store.engine.url
    again = None
    with pytest.raises(StoreError, match="newer than this lineinspect knows"):
        again = Store(store.data_root, url.render_as_string(False) if url else None)
    assert again is None


def test_add_dedupe_relabel_and_history(store: Store) -> None:
    data = png(1)
    sha, outcome = _take(store, intake.Item(data=data, boxes=[BOX], state="labelled"))
    assert outcome == "added"
    assert _take(store, intake.Item(data=data, boxes=[BOX], state="labelled"))[1] == "duplicate"
    assert _take(store, intake.Item(data=data))[1] == "duplicate"
    moved = {"box": [5.0, 6.0, 30.0, 40.0], "label": "dark"}
    item = intake.Item(
        data=data, boxes=[moved], state="labelled", author="ann", origin="prediction-changed"
    )
    assert _take(store, item)[1] == "relabelled"
    assert _take(store, intake.Item(data=data, state="ok"))[1] == "relabelled"
    with store.transaction() as s:
        smp = samples.get(s, sha)
        hist = labels.history(s, smp)
        assert [h.version for h in hist] == [1, 2, 3]
        assert [h.state for h in hist] == ["labelled", "labelled", "ok"]
        assert hist[1].author == "ann" and hist[1].origin == "prediction-changed"
        assert hist[1].boxes == [moved]
        assert smp.state == "ok" and smp.label_version == 3
        assert smp.split == split_of(sha, store.val_fraction)
    assert store.blobs.read(sha) == data


def test_unknown_class_is_refused_listing_the_known_ones_and_add_classes_widens(
    store: Store,
) -> None:
    _take(store, intake.Item(data=png(2), boxes=[BOX], state="labelled"))
    before = state(store)
    bad = intake.Item(data=png(3), boxes=[{"box": [1, 1, 9, 9], "label": "rust"}], state="labelled")
    with pytest.raises(
        InvalidInput, match=r"unknown class.*'rust'.*known classes: \['bright', 'dark'\]"
    ):
        _take(store, bad)
    assert state(store) == before
    _take(store, bad, add_classes=True)
    with store.transaction() as s:
        assert datasets.get(s, "d").classes == ["bright", "dark", "rust"]


@pytest.mark.parametrize(
    ("data", "boxes", "error", "match"),
    [
        (b"\xff\xd8\xff\xe0 not a jpeg", [BOX], InvalidImage, "not a usable image"),
        (png(9)[:200], [BOX], InvalidImage, "not a usable image"),
        (png(9), [{"box": [10, 10, 90, 20], "label": "dark"}], InvalidInput, "outside the 64x64"),
        (png(9), [{"box": [10, 10, 10, 20], "label": "dark"}], InvalidInput, "zero or negative"),
        (png(9), [{"box": [20, 10, 10, 20], "label": "dark"}], InvalidInput, "zero or negative"),
        (png(9), [{"box": [1, 2, 3], "label": "dark"}], InvalidInput, "4 numbers"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(
    store: Store, data: bytes, boxes: list[dict[str, object]], error: type[Exception], match: str
) -> None:
    _take(store, intake.Item(data=png(8), boxes=[BOX], state="labelled"))
    before = state(store)
    with pytest.raises(error, match=match):
        _take(store, intake.Item(data=data, boxes=boxes, state="labelled"))
    assert state(store) == before


def test_label_for_a_missing_sample_is_not_found(store: Store) -> None:
    from service.errors import NotFound

    with pytest.raises(NotFound), store.transaction() as s:
        samples.get(s, "0" * 64)


def test_snapshot_fingerprint_is_content_only_and_changes_with_a_label(
    store: Store, tmp_path: Path
) -> None:
    shas = [
        _take(store, intake.Item(data=png(i), boxes=[BOX], state="labelled"))[0] for i in range(12)
    ]
    with store.transaction() as s:
        ds = datasets.get(s, "d")
        snap, yaml_path, created = snapshots.create(s, store.blobs, ds, store.snapshots_root)
        fp = snap.fingerprint
    assert created
    with store.transaction() as s:
        again, _, created_again = snapshots.create(
            s, store.blobs, datasets.get(s, "d"), store.snapshots_root
        )
    assert not created_again and again.fingerprint == fp
    data = yaml.safe_load(yaml_path.read_text())
    assert data["names"] == CLASSES and data["train"] == "images/train"
    n_files = sum(1 for _ in (yaml_path.parent / "images").rglob("*.png"))
    assert n_files == 12 == sum(snap.counts.values())
    # the same content in another, fresh store gives the same fingerprint
    other = Store(tmp_path / "other", val_fraction=store.val_fraction)
    try:
        for i in range(11, -1, -1):
            _take(other, intake.Item(data=png(i), boxes=[BOX], state="labelled"))
        with other.transaction() as s:
            assert (
                snapshots.create(s, other.blobs, datasets.get(s, "d"), other.snapshots_root)[
                    0
                ].fingerprint
                == fp
            )
    finally:
        other.close()
    changed = {"box": [4.0, 6.0, 31.0, 40.0], "label": "bright"}
    _take(store, intake.Item(data=png(0), boxes=[changed], state="labelled"))
    with store.transaction() as s:
        new, _, created_new = snapshots.create(
            s, store.blobs, datasets.get(s, "d"), store.snapshots_root
        )
    assert created_new and new.fingerprint != fp
    assert shas


def test_adding_a_thousand_images_moves_no_existing_sample(tmp_path: Path) -> None:
    st = Store(tmp_path / "data", val_fraction=0.2)
    first = {}
    for i in range(40):
        sha, _ = _take(st, intake.Item(data=png(i, 8), boxes=[], state="ok"))
        first[sha] = split_of(sha, st.val_fraction)
    with st.transaction() as s:
        ds = datasets.get(s, "d")
        for i in range(40, 1040):
            data = png(i, 8)
            intake.take(s, st.blobs, ds, intake.Item(data=data, state="ok"), st.max_pixels)
    with st.transaction() as s:
        rows, total = samples.page(s, datasets.get(s, "d"), limit=500)
        assert total == 1040
        ds = datasets.get(s, "d")
        for sha, split in first.items():
            smp = samples.find(s, ds, sha)
            assert smp is not None and smp.split == split
        vals = sum(1 for r in samples.page(s, ds, limit=500, offset=0)[0] if r.split == "val")
    assert 0.1 < vals / 500 < 0.3
    assert rows
    st.close()


def test_concurrent_intake_of_one_image_stores_it_once(store: Store) -> None:
    import concurrent.futures as cf

    from service.errors import Conflict

    with store.transaction() as s:
        datasets.get_or_create(s, "d", CLASSES, store.val_fraction)
    data = png(77)

    def take(_: int) -> str:
        try:
            return _take(store, intake.Item(data=data, boxes=[BOX], state="labelled"))[1]
        except Conflict:
            return "conflict"

    with cf.ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(take, range(8)))
    assert outcomes.count("added") == 1
    assert set(outcomes) <= {"added", "duplicate", "conflict"}
    assert state(store) == (1, 1, 1)
