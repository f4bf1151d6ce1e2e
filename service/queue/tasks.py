"""Stopping background tasks reliably."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

log = logging.getLogger(__name__)


async def cancel_task(task: asyncio.Task[Any] | None, timeout: float = 5.0) -> None:
    """Cancel ``task`` and wait for it, cancelling again while it keeps running.

    redis-py's asyncio client (8.x on Python 3.11) sometimes loses a ``CancelledError``
    delivered while a command is in flight, so a single ``cancel()`` can leave a loop
    running forever; repeating it until the task is done is the robust way out.
    """
    if task is None:
        return
    end = time.monotonic() + timeout
    while not task.done() and time.monotonic() < end:
        task.cancel()
        await asyncio.wait([task], timeout=0.05)
    if not task.done():
        log.warning("background task %s did not stop within %.1fs", task.get_name(), timeout)
    elif not task.cancelled() and task.exception() is not None:
        log.error("background task %s failed", task.get_name(), exc_info=task.exception())
