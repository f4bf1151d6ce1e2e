"""Alembic environment: runs on the engine handed over by service/store/migrate.py."""

from __future__ import annotations

from alembic import context

# the jobs and promotion-history tables share the store's metadata
import service.jobs.schema
import service.promotion.schema  # noqa: F401
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
