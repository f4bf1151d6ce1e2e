"""The promotion history and :func:`move_alias`, the one way an alias moves.

Every alias move (REST, CLI, the pipeline's policy, a shadow promotion, a rollback) goes
through :func:`move_alias`: the registry's atomic ``aliases.json`` write first (the
registry stays the truth), then one appended ``promotion_history`` row naming who or
what moved it, from which version to which, and why.
"""

from __future__ import annotations

import logging
import os
import pwd
from typing import Any

from sqlalchemy import select

from service.errors import StoreError
from service.promotion.schema import REASON_MAX, REASONS, PromotionEvent
from service.registry import Registry
from service.store.store import Store

log = logging.getLogger(__name__)


def move_alias(
    registry: Registry,
    store: Store,
    name: str,
    alias: str,
    version: int,
    actor: str,
    reason: str,
    details: dict[str, Any] | None = None,
) -> int | None:
    """Point ``name@alias`` at ``version`` and append the move to the history; returns
    the previous version. A move to the version the alias already has is not recorded.

    Raises what :meth:`Registry.set_alias` raises (nothing changed then), or
    :class:`StoreError` when the alias moved but the history row could not be written.
    """
    if not 0 < len(reason) <= REASON_MAX:
        raise ValueError(
            f"a promotion reason is 1 to {REASON_MAX} characters (usually one of {REASONS})"
        )
    previous = registry.set_alias(name, alias, version)
    if previous == version:
        return previous
    event = PromotionEvent(
        name=name,
        alias=alias,
        from_version=previous,
        to_version=version,
        actor=actor[:128],
        reason=reason,
        details=details or {},
    )
    try:
        with store.transaction() as s:
            s.add(event)
    except Exception as exc:
        log.exception(
            "%s@%s moved %s -> %s but its history row failed", name, alias, previous, version
        )
        raise StoreError(
            f"{name}@{alias} now points at version {version} (was {previous}), but the "
            f"promotion history could not record it: {exc}"
        ) from exc
    log.info("%s@%s: %s -> %s by %s (%s)", name, alias, previous, version, actor, reason)
    return previous


def history(
    store: Store, name: str, limit: int = 100, alias: str | None = None
) -> list[PromotionEvent]:
    """The moves of ``name`` (of one ``alias`` if given), newest first."""
    query = select(PromotionEvent).where(PromotionEvent.name == name)
    if alias is not None:
        query = query.where(PromotionEvent.alias == alias)
    with store.transaction() as s:
        return list(s.scalars(query.order_by(PromotionEvent.id.desc()).limit(limit)))


def since(store: Store, after_id: int, limit: int = 1000) -> list[PromotionEvent]:
    """Moves of any model with an id above ``after_id``, oldest first."""
    query = select(PromotionEvent).where(PromotionEvent.id > after_id)
    with store.transaction() as s:
        return list(s.scalars(query.order_by(PromotionEvent.id).limit(limit)))


def last_id(store: Store) -> int:
    """The id of the newest move (0 when none)."""
    with store.transaction() as s:
        newest = s.scalar(select(PromotionEvent.id).order_by(PromotionEvent.id.desc()).limit(1))
    return int(newest or 0)


def cli_actor() -> str:
    """Who runs a CLI command: ``cli:<user>`` (from the uid, not the environment)."""
    try:
        return f"cli:{pwd.getpwuid(os.getuid()).pw_name}"
    except KeyError:
        return f"cli:uid-{os.getuid()}"
