"""Engine and session factory: SQLite under ``data_root`` by default (WAL), PostgreSQL
(psycopg 3) when ``database_url`` is set. The schema is migrated on open
(:mod:`service.store.migrate`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings

SQLITE_FILE = "lineinspect.db"
#: The bound of every id, offset and count a request carries (a larger one is a 422, not
#: a database overflow): the largest integer a JSON double holds exactly, so clients and
#: schema validators compare it exactly too, and well inside SQLite's and PostgreSQL's
#: 64-bit integers.
MAX_INT = 2**53 - 1


def database_url(data_root: Path, url: str | None) -> str:
    """The SQLAlchemy URL: ``url`` (``postgresql://`` means psycopg 3) or the SQLite file."""
    if url is None:
        return f"sqlite:///{Path(data_root).resolve() / SQLITE_FILE}"
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def make_engine(data_root: Path, url: str | None) -> Engine:
    """An engine for the store's database (SQLite parent directory created)."""
    full = database_url(data_root, url)
    if full.startswith("sqlite"):
        Path(data_root).mkdir(parents=True, exist_ok=True)
        engine = create_engine(full, connect_args={"check_same_thread": False, "timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(full, pool_pre_ping=True, pool_size=5, max_overflow=10)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded attributes after commit (rows are read after writes)."""
    return sessionmaker(engine, expire_on_commit=False)


def engine_from_settings(settings: Settings) -> Engine:
    """The engine of the project database named by ``data_root`` and ``database_url``."""
    url = settings.database_url
    return make_engine(settings.data_root, url.get_secret_value() if url else None)
