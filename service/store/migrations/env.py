"""Alembic environment: runs on the engine handed over by service/store/migrate.py."""

from __future__ import annotations

from alembic import context

import service.audit.schema
import service.jobs.schema  # noqa: F401  (the jobs and audit tables share the store's metadata)
from service.store.schema import Base

engine = context.config.attributes["engine"]
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
