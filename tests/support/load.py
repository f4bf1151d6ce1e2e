"""REST inspection load around an action (a promotion, a rollback): 16 concurrent
clients, half the requests before the action and half after it."""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable
from typing import Any

from tests.conftest import defect_image, encode
from tests.support.http import HTTP

JPEG = {"Content-Type": "image/jpeg"}


def inspect_once(url: str, data: bytes | None = None, **params: str) -> tuple[int, Any]:
    """POST one defect image; (status, JSON body)."""
    body = data if data is not None else encode(defect_image())
    r = HTTP.post(url + "/v1/inspect", content=body, headers=JPEG, params=params, timeout=30)
    return r.status_code, r.json()


def under_load(
    url: str, action: Callable[[], Any], requests: int = 300, workers: int = 16
) -> tuple[Any, list[tuple[int, Any]]]:
    """Run ``action`` while ``workers`` clients inspect: ``requests // 2`` submitted
    before it, the rest after it returned. Returns (its result, every (status, body)
    in submission order)."""
    data = encode(defect_image())
    with cf.ThreadPoolExecutor(workers) as pool:
        before = [pool.submit(inspect_once, url, data) for _ in range(requests // 2)]
        result = action()
        after = [pool.submit(inspect_once, url, data) for _ in range(requests - requests // 2)]
        answers = [f.result() for f in before + after]
    return result, answers
