"""The jobs' database engine from the settings: SQLite under ``data_root`` by default,
PostgreSQL (psycopg 3) when ``database_url`` is set. The data store's engine is the same
database; at merge this module gives way to it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event

from service.config import Settings

SQLITE_FILE = "lineinspect.db"


def database_url(data_root: Path, url: str | None) -> str:
    """The SQLAlchemy URL: ``url`` (``postgresql://`` means psycopg 3) or the SQLite file."""
    if url is None:
        return f"sqlite:///{Path(data_root).resolve() / SQLITE_FILE}"
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def make_engine(data_root: Path, url: str | None) -> Engine:
    """An engine for the project database (the SQLite directory is created)."""
    full = database_url(data_root, url)
    if full.startswith("sqlite"):
        Path(data_root).mkdir(parents=True, exist_ok=True)
        engine = create_engine(full, connect_args={"check_same_thread": False, "timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(full, pool_pre_ping=True, pool_size=5, max_overflow=5)


def engine_from_settings(settings: Settings) -> Engine:
    """The engine named by ``data_root`` and ``database_url``."""
    return make_engine(settings.data_root, settings.database_url)
