"""The store facade: one engine, its sessions and the blob store, opened from settings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from service.config import Settings
from service.errors import Conflict, StoreError
from service.store import migrate
from service.store.blobs import BlobStore
from service.store.db import make_engine, session_factory


class Store:
    """Database + blobs under ``data_root``; the schema is migrated when opened."""

    def __init__(
        self,
        data_root: Path,
        database_url: str | None = None,
        val_fraction: float = 0.15,
        golden_per_class: int = 10,
        max_pixels: int = 50_000_000,
    ) -> None:
        self.data_root = Path(data_root).resolve()
        self.data_root.mkdir(parents=True, exist_ok=True)
        self.val_fraction = val_fraction
        self.golden_per_class = golden_per_class
        self.max_pixels = max_pixels
        self.engine = make_engine(self.data_root, database_url)
        try:
            self.revision = migrate.upgrade(self.engine)
        except OperationalError as exc:
            self.engine.dispose()
            raise StoreError(f"cannot open the data store database: {exc.orig}") from exc
        except BaseException:
            self.engine.dispose()
            raise
        self.sessions = session_factory(self.engine)
        self.blobs = BlobStore(self.data_root)
        self.blobs.sweep_temporary()

    @property
    def snapshots_root(self) -> Path:
        """Where snapshots are materialised."""
        return self.data_root / "snapshots"

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits on success and rolls back on any error. A unique
        constraint lost to a concurrent writer (another instance took the same image in
        at the same moment) is a :class:`~service.errors.Conflict`."""
        try:
            with self.sessions.begin() as session:
                yield session
        except IntegrityError as exc:
            raise Conflict(f"a concurrent write of the same record won; retry: {exc.orig}") from exc

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()


def open_store(settings: Settings) -> Store:
    """The store the settings name (``data_root``, ``database_url``)."""
    url = settings.database_url.get_secret_value() if settings.database_url else None
    return Store(
        settings.data_root,
        url,
        settings.data_val_fraction,
        settings.data_golden_per_class,
        settings.max_pixels,
    )
