"""Programmatic Alembic: upgrade to head at start-up, refuse a schema newer than the code.

Several processes may start at once against one PostgreSQL database; the upgrade runs in
one transaction (PostgreSQL has transactional DDL), so a racing second one fails on the
existing tables and re-checks, finding the schema current.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from service.errors import StoreError

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None = empty database)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    """The newest revision this code knows."""
    head = ScriptDirectory.from_config(_config_no_engine()).get_current_head()
    assert head is not None
    return head


def _config_no_engine() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def upgrade(engine: Engine) -> str:
    """Migrate the database to head; returns the revision. Raises :class:`StoreError`
    when the database was migrated by a newer lineinspect (unknown revision)."""
    cfg = _config(engine)
    script = ScriptDirectory.from_config(cfg)
    current = current_revision(engine)
    if current is not None:
        try:
            script.get_revision(current)
        except Exception as exc:  # alembic raises several kinds for an unknown revision
            raise StoreError(
                f"the database schema is at revision {current!r}, newer than this "
                f"lineinspect knows (head {script.get_current_head()!r}); upgrade "
                "lineinspect, or point database_url/data_root at another store"
            ) from exc
    head = script.get_current_head()
    if current is not None and current == head:
        return current
    try:
        command.upgrade(cfg, "head")
    except SQLAlchemyError:
        if current_revision(engine) != script.get_current_head():  # not a benign race
            raise
    rev = current_revision(engine)
    log.info("data store schema at revision %s", rev)
    assert rev is not None
    return rev
