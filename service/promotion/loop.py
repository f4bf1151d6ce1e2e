"""The API's promotion task: shadow promotions, the rollback monitor's view of
``production``, automatic rollbacks, and the promotion metrics from the history.

One asyncio task per API process, every ``promotion_check_s``; its blocking work (alias
files, the database) runs in threads, so it never holds up an inspection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from service.config import Settings
from service.context import AppContext
from service.errors import LineInspectError
from service.observers import observe
from service.promotion import history, shadow
from service.promotion.history import move_alias
from service.promotion.monitor import RollbackMonitor
from service.promotion.policy import spec_of
from service.promotion.schema import REASONS, PromotionEvent
from service.registry import parse_ref
from service.store.store import Store

log = logging.getLogger(__name__)

ALIASES = ("production", "candidate", "shadow")
ROLLBACK_REASONS = {"rollback": "manual", "auto_rollback": "auto"}
MONITOR_ACTOR = "rollback-monitor"
SHADOW_ACTOR = "shadow-checker"


class PromotionLoop:
    """Owns the rollback monitor (when enabled) and the periodic checks."""

    def __init__(self, settings: Settings, store: Store, ctx: AppContext, state: Any) -> None:
        self.settings, self.store, self.ctx, self.state = settings, store, ctx, state
        self.lineages = sorted(
            {parse_ref(m).name for m in settings.models} | set(settings.promotion)
        )
        self.monitor: RollbackMonitor | None = None
        if settings.rollback_enabled:
            self.monitor = RollbackMonitor(
                settings.rollback_window_frames,
                settings.rollback_fail_rate_band,
                settings.rollback_max_error_rate,
                self.lineages[0] if self.lineages else "",
                ctx.metrics.line_label,
                self._request_rollback,
            )
        self._task: asyncio.Task[None] | None = None
        self._rollbacks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_id = 0
        self._counting = asyncio.Lock()

    async def start(self) -> None:
        """Read the current state, install the monitor, start the periodic task."""
        self._loop = asyncio.get_running_loop()
        for name in self.lineages:
            for alias in ALIASES:
                for reason in REASONS:
                    self.ctx.metrics.promotions.labels(name, alias, reason)
            for kind in ROLLBACK_REASONS.values():
                self.ctx.metrics.rollbacks.labels(name, kind)
        self._last_id = await asyncio.to_thread(history.last_id, self.store)
        if self.monitor is not None:
            await self._read_production()
            observe(self.ctx, self.monitor)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Cancel the task and any rollback in progress."""
        for task in (self._task, *self._rollbacks):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.promotion_check_s)
            for step in (self._read_production, self._check_shadows, self._count_moves):
                try:
                    await step()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("promotion check %s failed; retrying next period", step.__name__)

    # --- the rollback monitor ----------------------------------------------------
    def _production(self, names: list[str]) -> dict[str, int | None]:
        out: dict[str, int | None] = {}
        for name in names:
            try:
                out[name] = self.ctx.registry.aliases(name).get("production")
            except LineInspectError:
                out[name] = None
        return out

    async def _read_production(self) -> None:
        if self.monitor is None:
            return
        names = sorted(set(self.lineages) | set(self.monitor.names()))
        for name, version in (await asyncio.to_thread(self._production, names)).items():
            self.monitor.set_production(name, version)

    def _request_rollback(self, name: str, bad: int, back_to: int, details: dict[str, Any]) -> None:
        """Called by the monitor on the hot path: schedule the move, return at once."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._spawn_rollback, name, bad, back_to, details)

    def _spawn_rollback(self, name: str, bad: int, back_to: int, details: dict[str, Any]) -> None:
        task = asyncio.create_task(self._auto_rollback(name, bad, back_to, details))
        self._rollbacks.add(task)
        task.add_done_callback(self._rollbacks.discard)

    async def _auto_rollback(
        self, name: str, bad: int, back_to: int, details: dict[str, Any]
    ) -> None:
        try:
            current = (await asyncio.to_thread(self._production, [name]))[name]
            if current != bad:  # someone (another replica, a person) moved it already
                log.info(
                    "auto rollback of %s skipped: production is %s, not %s", name, current, bad
                )
                return
            await self._move(
                name, back_to, MONITOR_ACTOR, "auto_rollback", {**details, "from": bad}
            )
            if self.monitor is not None:
                self.monitor.set_production(name, back_to, rolled_back=True)
            log.warning("rolled %s@production back from %s to %s: %s", name, bad, back_to, details)
        except Exception:
            log.exception("automatic rollback of %s from %s to %s failed", name, bad, back_to)

    async def _move(
        self, name: str, version: int, actor: str, reason: str, details: dict[str, Any]
    ) -> None:
        """Warm ``version`` first (zero failed requests in the swap), then move."""
        manager = self.ctx.manager
        if manager is not None:
            await manager.preload(name, version)
        await asyncio.to_thread(
            move_alias,
            self.ctx.registry,
            self.store,
            name,
            "production",
            version,
            actor,
            reason,
            details,
        )
        if manager is not None:
            await manager.refresh()
        await self._count_moves()

    # --- shadow promotions -----------------------------------------------------------
    async def _check_shadows(self) -> None:
        source: shadow.ShadowSource | None = getattr(self.state, "shadow", None)
        if source is None:
            return
        for name, spec in self.settings.promotion.items():
            if spec.policy != "shadow":
                continue
            summary = source.summary(name)
            if summary is None:
                continue
            aliases = await asyncio.to_thread(self.ctx.registry.aliases, name)
            if shadow.due(spec_of(self.settings, name), summary, aliases):
                await self._move(
                    name, summary.shadow_version, SHADOW_ACTOR, "shadow", shadow.figures(summary)
                )

    # --- metrics from the history ----------------------------------------------------
    async def _count_moves(self) -> None:
        async with self._counting:  # the period and a move may both ask at once
            events = await asyncio.to_thread(history.since, self.store, self._last_id)
            for event in events:
                self._count(event)
                self._last_id = max(self._last_id, event.id)

    def _count(self, event: PromotionEvent) -> None:
        m = self.ctx.metrics
        m.promotions.labels(event.name, event.alias, event.reason).inc()
        kind = ROLLBACK_REASONS.get(event.reason)
        if kind is not None:
            m.rollbacks.labels(event.name, kind).inc()


async def install(settings: Settings, store: Store, ctx: AppContext, state: Any) -> PromotionLoop:
    """Create and start the loop (the caller stops it at shutdown)."""
    loop = PromotionLoop(settings, store, ctx, state)
    await loop.start()
    return loop
