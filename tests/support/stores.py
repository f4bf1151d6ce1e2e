"""The data store on SQLite and on a real PostgreSQL server, as one parametrised fixture."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from service.store import Store
from service.store.schema import Label, Sample
from tests.support.postgres_server import PostgresServer


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh store: SQLite under tmp_path, or a new database on the test PostgreSQL."""
    url = None
    if request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.create_database()
    st = Store(tmp_path / "data", url, val_fraction=0.2, golden_per_class=2)
    try:
        yield st
    finally:
        st.close()


def state(store: Store) -> tuple[int, int, int]:
    """(samples, label versions, blobs): what a refused request must leave unchanged."""
    with store.transaction() as s:
        n_samples = s.scalar(select(func.count()).select_from(Sample)) or 0
        n_labels = s.scalar(select(func.count()).select_from(Label)) or 0
    return n_samples, n_labels, len(list(store.blobs.all()))
