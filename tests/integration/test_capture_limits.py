"""Capture limits as token buckets: in-process (refill by a controlled clock) and shared
through a real redis-server by several API instances at once."""

from __future__ import annotations

import concurrent.futures as cf

from service.capture.limits import LocalBuckets, RedisBuckets
from service.capture.spec import SamplerSpec
from tests.support.redis_server import RedisServer, redis_server

__all__ = ["redis_server"]  # the fixture


def spec(**kw: object) -> SamplerSpec:
    return SamplerSpec.model_validate({"name": "s", "kind": "random", **kw})


def test_local_buckets_hold_every_window_and_refill() -> None:
    now = [1000.0]
    b = LocalBuckets([spec(per_minute=3, per_hour=4)], clock=lambda: now[0])
    assert [b.take("s") for _ in range(5)] == [True, True, True, False, False]
    now[0] += 60  # the minute bucket refills 3, the hour bucket only 60 * 4/3600
    assert [b.take("s") for _ in range(3)] == [True, False, False]
    now[0] += 3600
    assert [b.take("s") for _ in range(4)] == [True, True, True, False]
    assert LocalBuckets([spec()]).take("s") and LocalBuckets([]).take("other")


def test_redis_buckets_are_shared_by_instances_under_concurrent_load(
    redis_server: RedisServer,
) -> None:
    specs = [spec(per_day=7, per_hour=100)]
    instances = [RedisBuckets(redis_server.client(), "li", specs) for _ in range(4)]
    with cf.ThreadPoolExecutor(16) as pool:
        taken = list(pool.map(lambda i: instances[i % 4].take("s"), range(64)))
    assert sum(taken) == 7
    assert not instances[0].take("s")
    assert RedisBuckets(redis_server.client(), "other", specs).take("s")  # own prefix
