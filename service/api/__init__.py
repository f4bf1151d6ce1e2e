"""REST edge (FastAPI): inspection, model management, health, metrics."""
