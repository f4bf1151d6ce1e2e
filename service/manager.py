"""Loaded model versions, alias resolution and atomic hot swaps.

The manager keeps an in-memory copy of every model's aliases, so resolving a
reference on the hot path never touches the disk. A watcher task polls the alias
files; when an alias moves (CLI, REST or a hand edit), the new version is loaded and
warmed off the event loop, then the alias is switched with one dict assignment. The
old version keeps serving the requests that already resolved to it and is closed when
the last of them finishes (reference counting), so no request fails during a swap.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from models.processing import PostprocessConfig
from models.registry import ModelRef
from service.batcher import Batcher
from service.config import Settings
from service.engine import ModelSession, auto_intra_op_threads
from service.errors import ModelNotFound
from service.metrics import Metrics
from service.registry import ModelVersion, Registry, parse_ref

log = logging.getLogger(__name__)


@dataclass
class Runner:
    """A loaded, warm model version with its batcher and a count of current users."""

    version: ModelVersion
    session: ModelSession
    batcher: Batcher
    users: int = 0
    retired: bool = False
    aliases: set[str] = field(default_factory=set)

    @property
    def key(self) -> tuple[str, int]:
        """``(name, version)``."""
        return (self.version.name, self.version.version)


class ModelManager:
    """Owns every loaded :class:`Runner`; create in the app lifespan, ``await start()``."""

    def __init__(self, registry: Registry, settings: Settings, metrics: Metrics) -> None:
        self.registry, self.settings, self.metrics = registry, settings, metrics
        self._runners: dict[tuple[str, int], Runner] = {}
        self._aliases: dict[str, dict[str, int]] = {}
        self._mtimes: dict[str, float] = {}
        self._load_locks: dict[tuple[str, int], asyncio.Lock] = {}
        self._watch_task: asyncio.Task[None] | None = None
        self._refresh_lock = asyncio.Lock()
        self.ready = False
        self.default_ref = settings.models[0]

    # --- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        """Load and warm every configured model, then start watching alias files."""
        for ref in self.settings.models:
            r = parse_ref(ref)
            self._read_aliases(r.name)
            await self._ensure_loaded(self._resolve_key(r))
        self._publish_info()
        self.ready = True
        self.metrics.ready.set(1)
        self._watch_task = asyncio.create_task(self._watch(), name="registry-watch")

    async def stop(self) -> None:
        """Stop watching and close every batcher after it drains."""
        self.ready = False
        self.metrics.ready.set(0)
        if self._watch_task:
            self._watch_task.cancel()
        runners = list(self._runners.values())
        self._runners.clear()
        for runner in runners:
            await asyncio.to_thread(runner.batcher.close, 10.0)

    # --- resolution -------------------------------------------------------------------
    def _read_aliases(self, name: str) -> dict[str, int]:
        self._mtimes[name] = self.registry.aliases_mtime(name)
        aliases = self.registry.aliases(name)
        self._aliases[name] = aliases
        return aliases

    def _resolve_key(self, ref: ModelRef) -> tuple[str, int]:
        if ref.version is not None:
            return (ref.name, ref.version)
        aliases = self._aliases.get(ref.name)
        if aliases is None:
            aliases = self._read_aliases(ref.name)  # raises ModelNotFound for unknown names
        if ref.alias not in aliases:
            raise ModelNotFound(f"model {ref.name!r} has no alias {ref.alias!r}")
        return (ref.name, aliases[ref.alias])

    async def acquire(self, ref: str | None) -> Runner:
        """Resolve ``ref`` (default model when None) to a warm runner and count a user.

        Every ``acquire`` must be paired with :meth:`release`.
        """
        key = self._resolve_key(parse_ref(ref or self.default_ref))
        runner = self._runners.get(key) or await self._ensure_loaded(key)
        runner.users += 1
        return runner

    def release(self, runner: Runner) -> None:
        """End one use; a retired runner closes when its last user leaves."""
        runner.users -= 1
        if runner.retired and runner.users == 0:
            self._close_later(runner)

    # --- loading and swapping -----------------------------------------------------------
    def _postprocess_config(self, session: ModelSession) -> PostprocessConfig:
        s = self.settings
        return PostprocessConfig.for_classes(
            session.spec.class_names,
            s.score_threshold,
            s.class_thresholds,
            s.iou_threshold,
            s.max_detections,
            card=session.version.card,
        )

    def _load(self, key: tuple[str, int]) -> Runner:
        s = self.settings
        version = self.registry.get(*key)
        intra = auto_intra_op_threads(s.intra_op_threads, s.inference_threads)
        session = ModelSession(
            version, s.providers, intra, s.inter_op_threads, s.ort_spinning, s.strict_providers
        )
        session.warmup(s.warmup_runs, s.max_batch)
        batcher = Batcher(
            session,
            self._postprocess_config(session),
            self.metrics,
            max_batch=s.max_batch,
            max_delay_s=s.max_delay_ms / 1000,
            queue_size=s.queue_size,
            threads=s.inference_threads,
        )
        return Runner(version=version, session=session, batcher=batcher)

    async def preload(self, name: str, version: int) -> None:
        """Load and warm a version ahead of an alias switch (raises if it cannot load)."""
        await self._ensure_loaded((name, version))

    async def _ensure_loaded(self, key: tuple[str, int]) -> Runner:
        lock = self._load_locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key not in self._runners:
                self._runners[key] = await asyncio.to_thread(self._load, key)
            return self._runners[key]

    def _close_later(self, runner: Runner) -> None:
        self._runners.pop(runner.key, None)
        asyncio.get_running_loop().run_in_executor(None, runner.batcher.close, 30.0)
        log.info("retired %s:%s", *runner.key)

    async def refresh(self) -> list[str]:
        """Re-read alias files that changed; load, warm and swap. Returns swapped refs."""
        swapped: list[str] = []
        async with self._refresh_lock:
            for name in list(self._aliases):
                if self.registry.aliases_mtime(name) == self._mtimes.get(name):
                    continue
                old = self._aliases[name]
                try:
                    new = self.registry.aliases(name)
                except Exception:  # a half-edited file by hand: keep serving, retry next poll
                    log.exception("cannot read aliases of %s; keeping the current ones", name)
                    continue
                for alias, version in new.items():
                    if old.get(alias) != version:
                        await self._ensure_loaded((name, version))  # warm before the switch
                self._mtimes[name] = self.registry.aliases_mtime(name)
                self._aliases[name] = new  # the atomic switch
                changed = [a for a in new if old.get(a) != new[a]]
                swapped += [f"{name}@{a}" for a in changed]
                for a in changed:
                    self.metrics.model_swaps.labels(name).inc()
                    log.info("swapped %s@%s: %s -> %s", name, a, old.get(a), new[a])
                self._retire_unused(name)
            if swapped:
                self._publish_info()
        return swapped

    def _retire_unused(self, name: str) -> None:
        pinned = {self._resolve_key(parse_ref(r)) for r in self.settings.models if ":" in r}
        in_use = {(name, v) for v in self._aliases[name].values()} | pinned
        for key, runner in list(self._runners.items()):
            if key[0] == name and key not in in_use and not runner.retired:
                runner.retired = True
                if runner.users == 0:
                    self._close_later(runner)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.settings.registry_poll_s)
            try:
                await self.refresh()
            except Exception:
                log.exception("registry refresh failed; retrying")

    # --- introspection ----------------------------------------------------------------
    def _info_labels(self, runner: Runner, alias: str) -> tuple[str, str, str, str]:
        return (runner.version.name, str(runner.version.version), runner.version.role, alias)

    def _publish_info(self) -> None:
        self.metrics.model_execution_provider.clear()
        for loaded in self._runners.values():
            self.metrics.model_execution_provider.labels(
                loaded.version.name, str(loaded.version.version), loaded.session.providers[0]
            ).set(1)
        self.metrics.model_info.clear()
        for name, aliases in self._aliases.items():
            for alias, version in aliases.items():
                runner = self._runners.get((name, version))
                if runner is not None:
                    self.metrics.model_info.labels(*self._info_labels(runner, alias)).set(1)

    def provider_report(self) -> list[dict[str, object]]:
        """Per loaded version: the execution provider it runs on, and requested ones it
        did not get (the readiness detail)."""
        report: list[dict[str, object]] = []
        for runner in self._runners.values():
            got = runner.session.providers
            missing = [p for p in self.settings.providers if p not in got]
            report.append(
                {
                    "model": runner.version.name,
                    "version": runner.version.version,
                    "provider": got[0],
                    "missing_providers": missing,
                }
            )
        return report

    def waiting(self, name: str, version: int) -> int:
        """Frames waiting in the batcher of ``name:version`` now (0 when not loaded): the
        cheap load signal shadow serving backs off on."""
        runner = self._runners.get((name, version))
        return runner.batcher.depth() if runner is not None else 0

    def loaded(self) -> list[Runner]:
        """Runners currently loaded."""
        return list(self._runners.values())

    def aliases(self, name: str) -> dict[str, int]:
        """The aliases this process serves for ``name`` (may lag the disk by one poll)."""
        return dict(self._aliases.get(name, {}))
