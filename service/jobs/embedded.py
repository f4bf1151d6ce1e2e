"""The embedded training worker: ``lineinspect serve`` runs one ``lineinspect worker
train`` as a child process when ``trainer`` is ``auto`` and torch is installed (looked
up with ``importlib.util.find_spec``, never imported: the serving process stays
torch-free). The child gets the same settings, dies with the server (SIGKILL on parent
death), is restarted after a crash, and is stopped (its job handed back) on shutdown.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pydantic import SecretStr

from service.config import Settings, child_environment
from service.context import AppContext
from service.jobs.runner import Child

log = logging.getLogger(__name__)

RESTART_DELAY_S = 5.0


def wanted(settings: Settings) -> bool:
    """Whether ``serve`` should start a training worker."""
    return settings.trainer == "auto" and importlib.util.find_spec("torch") is not None


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as ``LINEINSPECT_*`` variables, so the child sees what serve sees
    (including values from a ``--config`` file)."""
    env: dict[str, str] = {}
    prefix = str(Settings.model_config.get("env_prefix", ""))
    for name, value in settings.model_dump(mode="json").items():
        if value is None:
            continue
        secret = getattr(settings, name)
        if isinstance(secret, SecretStr):  # dumped masked: pass the value itself
            value = secret.get_secret_value()
        env[prefix + name.upper()] = value if isinstance(value, str) else json.dumps(value)
    return env


def _start(settings: Settings) -> Child:
    env = child_environment(settings_env(settings))
    program = [sys.executable, "-m", "service.cli", "worker", "train"]
    child = Child(program, env, log_path=None)  # logs go to the server's own output
    log.info(
        "embedded training worker started (pid %d, metrics port %d)",
        child.pid,
        settings.trainer_metrics_port,
    )
    return child


async def _supervise(settings: Settings, holder: list[Child]) -> None:
    while True:
        while (rc := holder[0].poll()) is None:  # polled: no thread parked on wait()
            await asyncio.sleep(1.0)
        log.error(
            "embedded training worker exited with status %d; restarting in %.0fs",
            rc,
            RESTART_DELAY_S,
        )
        await asyncio.sleep(RESTART_DELAY_S)
        holder[0] = _start(settings)


@asynccontextmanager
async def embedded_trainer(ctx: AppContext) -> AsyncIterator[None]:
    """An ``Edge`` of :func:`service.api.app.create_app`."""
    s = ctx.settings
    if not wanted(s):
        yield
        return
    holder = [_start(s)]
    supervisor = asyncio.create_task(_supervise(s, holder), name="trainer-supervisor")
    try:
        yield
    finally:
        supervisor.cancel()
        grace = s.trainer_stop_grace_s + s.trainer_poll_s + 5
        rc = await asyncio.to_thread(holder[0].stop, grace)
        log.info("embedded training worker stopped (status %d)", rc)
