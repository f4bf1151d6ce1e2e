"""The data store: images by sha256 on disk, samples, labels, datasets and snapshots in a
database (SQLite by default, PostgreSQL when ``database_url`` is set). Torch-free.

See docs/data.md for the data model and ../shared/DESIGN.md "The learning loop".
"""

from service.store.store import Store, open_store

__all__ = ["Store", "open_store"]
