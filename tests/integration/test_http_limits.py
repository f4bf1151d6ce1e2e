"""HTTP connection limits on a real server: oversized heads refused with 431, slow
heads answered 408 and closed, stalled bodies closed; normal requests unaffected."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.api.app import create_app
from service.http_limits import HttpLimits, limited_protocol
from service.registry import Registry
from tests.conftest import defect_image, encode
from tests.support.grpc_app import settings_for
from tests.support.http import HTTP
from tests.support.servers import serve_app
from tests.support.tiny_onnx import write_artefact

MAX_HEAD = 8192
HEAD_TIMEOUT = 0.5
BODY_TIMEOUT = 0.5
WAIT = 30.0  # how long a test waits for the server to act (a bound, not a sleep)


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp: Path = tmp_path_factory.mktemp("limits")
    reg = Registry(tmp / "registry")
    reg.root.mkdir()
    reg.register(write_artefact(tmp / "a1"), "tiny", alias="production")
    settings = settings_for(
        reg.root,
        http_max_header_bytes=MAX_HEAD,
        http_header_timeout_s=HEAD_TIMEOUT,
        http_body_timeout_s=BODY_TIMEOUT,
    )
    with serve_app(create_app(settings), http=limited_protocol(HttpLimits.of(settings))) as u:
        yield u


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=WAIT)


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def test_a_head_within_the_limit_is_served(url: str) -> None:
    r = HTTP.get(url + "/healthz", headers={f"x-pad-{i}": "v" * 100 for i in range(40)})
    assert r.status_code == 200


@pytest.mark.parametrize("pieces", [1, 64], ids=["at-once", "in-pieces"])
def test_an_oversized_head_is_refused_431(url: str, pieces: int) -> None:
    with connect(url) as sock:
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (4 * MAX_HEAD) + b"\r\n\r\n"
        step = -(-len(head) // pieces)
        try:
            for i in range(0, len(head), step):
                sock.sendall(head[i : i + step])
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before the whole head was sent
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:80]
    assert HTTP.get(url + "/readyz").status_code == 200


def test_a_slow_head_is_answered_408_and_closed(url: str) -> None:
    with connect(url) as sock:
        t0 = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        answer = read_all(sock)
        elapsed = time.monotonic() - t0
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:80]
    assert HEAD_TIMEOUT * 0.9 <= elapsed < WAIT


def test_an_idle_new_connection_is_closed(url: str) -> None:
    with connect(url) as sock:
        t0 = time.monotonic()
        read_all(sock)
        assert HEAD_TIMEOUT * 0.9 <= time.monotonic() - t0 < WAIT


def test_a_stalled_body_is_closed(url: str) -> None:
    with connect(url) as sock:
        t0 = time.monotonic()
        sock.sendall(
            b"POST /v1/inspect HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
            b"Content-Length: 100000\r\n\r\n" + b"\xff\xd8" * 8
        )
        answer = read_all(sock)
        elapsed = time.monotonic() - t0
    assert b" 200 " not in answer
    assert BODY_TIMEOUT * 0.9 <= elapsed < WAIT
    assert HTTP.get(url + "/readyz").status_code == 200


def test_a_normal_upload_still_works(url: str) -> None:
    r = HTTP.post(
        url + "/v1/inspect", content=encode(defect_image()), headers={"Content-Type": "image/jpeg"}
    )
    assert r.status_code == 200 and r.json()["verdict"] == "fail"
