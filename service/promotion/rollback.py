"""Manual rollback: ``production`` back to the version it had before its last move."""

from __future__ import annotations

from dataclasses import dataclass

from service.errors import Conflict
from service.promotion.history import history
from service.registry import Registry
from service.store.store import Store

PRODUCTION = "production"


@dataclass(frozen=True)
class RollbackPlan:
    """Where ``production`` is and where a rollback takes it."""

    name: str
    current: int
    target: int
    source: str  # "history" or "previous_version"


def plan_rollback(registry: Registry, store: Store, name: str) -> RollbackPlan:
    """The version ``production`` pointed at before its last move (from the history);
    without such a row, the highest registered version below the current one. Raises
    :class:`Conflict` when ``production`` is unset or there is nothing to go back to."""
    aliases = registry.aliases(name)
    current = aliases.get(PRODUCTION)
    if current is None:
        raise Conflict(f"model {name!r} has no production alias to roll back")
    versions = set(registry.versions(name))
    for event in history(store, name, limit=50, alias=PRODUCTION):
        if event.to_version == current and event.from_version is not None:
            if event.from_version in versions and event.from_version != current:
                return RollbackPlan(name, current, event.from_version, "history")
            break
    lower = [v for v in versions if v < current]
    if not lower:
        raise Conflict(f"{name}@production is version {current}: no earlier version to go back to")
    return RollbackPlan(name, current, max(lower), "previous_version")
