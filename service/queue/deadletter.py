"""Poison frames: frames whose every holder died are set aside, not redelivered.

A frame already delivered ``redis_dead_letter_after`` times when it is claimed again
(from a dead or an idle consumer) is copied, bytes and all, to the bounded stream
``<prefix>:dead`` with its entry id, delivery count and time, counted in
``lineinspect_queue_dead_letter_frames_total``, and answered with
:class:`service.errors.DeadLettered` (422) instead of being inspected once more.
Inspect the stream with ``redis-cli XRANGE <prefix>:dead - +``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

import redis.asyncio as aioredis

from service.config import Settings
from service.errors import DeadLettered
from service.metrics import Metrics
from service.queue.codec import QueuedFrame, error_reply
from service.queue.streams import REDIS_DOWN, QueueKeys

log = logging.getLogger(__name__)


async def dead_letter(
    client: aioredis.Redis,
    settings: Settings,
    metrics: Metrics,
    entry_id: str,
    fields: dict[Any, Any],
    queued: QueuedFrame,
    deliveries: int,
) -> str:
    """Keep a poison frame in ``<prefix>:dead``; returns the error answer to deliver."""
    keys = QueueKeys.from_settings(settings)
    kept = {**fields, "entry": entry_id, "deliveries": deliveries, "dead_at": repr(time.time())}
    with contextlib.suppress(*REDIS_DOWN):  # the answer matters more than the copy
        await client.xadd(
            keys.dead_letters, kept, maxlen=settings.redis_dead_letter_maxlen, approximate=False
        )
    metrics.queue_dead_letters.labels(keys.frames).inc()
    log.error(
        "frame %s (entry %s) was delivered %d times and every worker holding it died: moved to %s",
        queued.frame.frame_id,
        entry_id,
        deliveries,
        keys.dead_letters,
    )
    return error_reply(
        DeadLettered(
            f"frame {queued.frame.frame_id} was delivered {deliveries} times and each worker "
            f"holding it died; it is kept in {keys.dead_letters} and not inspected"
        )
    )
