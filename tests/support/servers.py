"""Run real servers on ephemeral loopback ports and wait for readiness (never sleep)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from tests.support.http import HTTP


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.02) -> None:  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until true; fail loudly on timeout."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"condition not met within {timeout}s")


@contextmanager
def serve_app(
    app: FastAPI, ready_path: str | None = "/readyz", http: type | str = "auto"
) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1:0 in a thread; yield its base URL.
    ``http``: uvicorn's HTTP protocol (e.g. :func:`service.http_limits.limited_protocol`)."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", http=http
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive())
    if not server.started:
        raise RuntimeError("server failed to start")
    port = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    if ready_path:
        wait_until(lambda: HTTP.get(url + ready_path).status_code == 200)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(30)
