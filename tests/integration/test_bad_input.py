"""A corpus of malformed requests: each gets a 4xx JSON error; the service stays ready."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from service.api.app import create_app
from service.config import load_settings
from service.registry import Registry
from tests.conftest import defect_image, encode
from tests.support.http import HTTP
from tests.support.servers import serve_app

MAX_BODY = 64 * 1024
MAX_PIXELS = 300 * 300


def png_with_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width``x``height`` (a decompression bomb shape)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


GOOD_JPEG = encode(defect_image())
GOOD_PNG = encode(defect_image(), "PNG")
BIG = encode(np.zeros((400, 400, 3), np.uint8), "PNG")  # small file, too many pixels


def _gif() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="GIF")
    return buf.getvalue()


# (id, request kwargs, expected status, expected error code)
CORPUS: list[tuple[str, dict[str, Any], int, str]] = [
    (
        "empty-body",
        {"content": b"", "headers": {"Content-Type": "image/jpeg"}},
        400,
        "invalid_image",
    ),
    (
        "random-bytes",
        {"content": bytes(range(256)) * 4, "headers": {"Content-Type": "image/jpeg"}},
        400,
        "invalid_image",
    ),
    (
        "truncated-jpeg",
        {"content": GOOD_JPEG[: len(GOOD_JPEG) // 2], "headers": {"Content-Type": "image/jpeg"}},
        400,
        "invalid_image",
    ),
    (
        "jpeg-header-only",
        {"content": GOOD_JPEG[:20], "headers": {"Content-Type": "image/jpeg"}},
        400,
        "invalid_image",
    ),
    (
        "truncated-png",
        {"content": GOOD_PNG[: len(GOOD_PNG) // 2], "headers": {"Content-Type": "image/png"}},
        400,
        "invalid_image",
    ),
    (
        "png-corrupt-middle",
        {
            "content": GOOD_PNG[:60] + b"\xff" * 200 + GOOD_PNG[260:],
            "headers": {"Content-Type": "image/png"},
        },
        400,
        "invalid_image",
    ),
    (
        "bmp-truncated",
        {"content": encode(defect_image(), "BMP")[:300], "headers": {"Content-Type": "image/bmp"}},
        400,
        "invalid_image",
    ),
    (
        "tiff-garbage",
        {"content": b"II*\x00" + b"\x00" * 60, "headers": {"Content-Type": "image/tiff"}},
        400,
        "invalid_image",
    ),
    (
        "gif-unsupported",
        {"content": _gif(), "headers": {"Content-Type": "image/png"}},
        400,
        "invalid_image",
    ),
    (
        "svg-as-png",
        {
            "content": b"<svg xmlns='http://www.w3.org/2000/svg'/>",
            "headers": {"Content-Type": "image/png"},
        },
        400,
        "invalid_image",
    ),
    (
        "text-plain",
        {"content": GOOD_JPEG, "headers": {"Content-Type": "text/plain"}},
        415,
        "unsupported_media_type",
    ),
    (
        "json-type",
        {"content": b"{}", "headers": {"Content-Type": "application/json"}},
        415,
        "unsupported_media_type",
    ),
    (
        "no-content-type",
        {"content": GOOD_JPEG, "headers": {"Content-Type": ""}},
        415,
        "unsupported_media_type",
    ),
    (
        "multipart-wrong-field",
        {"files": {"file": ("a.jpg", GOOD_JPEG, "image/jpeg")}},
        400,
        "invalid_input",
    ),
    (
        "multipart-empty-image",
        {"files": {"image": ("a.jpg", b"", "image/jpeg")}},
        400,
        "invalid_image",
    ),
    (
        "body-over-limit",
        {"content": b"\xff" * (MAX_BODY + 1), "headers": {"Content-Type": "image/jpeg"}},
        413,
        "payload_too_large",
    ),
    (
        "chunked-over-limit",
        {"content": iter([b"\xff" * 40_000] * 3), "headers": {"Content-Type": "image/jpeg"}},
        413,
        "payload_too_large",
    ),
    (
        "too-many-pixels",
        {"content": BIG, "headers": {"Content-Type": "image/png"}},
        413,
        "payload_too_large",
    ),
    (
        "decompression-bomb",
        {"content": png_with_size(100_000, 100_000), "headers": {"Content-Type": "image/png"}},
        413,
        "payload_too_large",
    ),
    (
        "bomb-moderate",
        {"content": png_with_size(20_000, 20_000), "headers": {"Content-Type": "image/png"}},
        413,
        "payload_too_large",
    ),
    (
        "unknown-model",
        {"content": GOOD_JPEG, "headers": {"Content-Type": "image/jpeg", "X-Model": "nope"}},
        404,
        "model_not_found",
    ),
    (
        "malformed-model-ref",
        {
            "content": GOOD_JPEG,
            "headers": {"Content-Type": "image/jpeg"},
            "params": {"model": "a:b:c"},
        },
        404,
        "model_not_found",
    ),
    (
        "unknown-version",
        {
            "content": GOOD_JPEG,
            "headers": {"Content-Type": "image/jpeg"},
            "params": {"model": "tiny:99"},
        },
        404,
        "model_not_found",
    ),
    (
        "unknown-alias",
        {
            "content": GOOD_JPEG,
            "headers": {"Content-Type": "image/jpeg"},
            "params": {"model": "tiny@nightly"},
        },
        404,
        "model_not_found",
    ),
    (
        "negative-deadline",
        {
            "content": GOOD_JPEG,
            "headers": {"Content-Type": "image/jpeg"},
            "params": {"deadline_ms": -5},
        },
        422,
        "invalid_request",
    ),
    (
        "line-too-long",
        {
            "content": GOOD_JPEG,
            "headers": {"Content-Type": "image/jpeg"},
            "params": {"line": "L" * 500},
        },
        422,
        "invalid_request",
    ),
]


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from tests.support.tiny_onnx import write_artefact

    tmp = tmp_path_factory.mktemp("bad")
    reg = Registry(tmp / "reg")
    reg.root.mkdir()
    reg.register(write_artefact(tmp / "a"), "tiny", alias="production")
    settings = load_settings(
        None,
        registry_root=reg.root,
        models=["tiny"],
        warmup_runs=1,
        max_body_bytes=MAX_BODY,
        max_pixels=MAX_PIXELS,
    )
    with serve_app(create_app(settings)) as u:
        yield u


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 20


@pytest.mark.parametrize(("case", "kwargs", "status", "code"), CORPUS, ids=[c[0] for c in CORPUS])
def test_bad_input_gets_clean_error(
    url: str, case: str, kwargs: dict[str, Any], status: int, code: str
) -> None:
    r = HTTP.post(url + "/v1/inspect", **kwargs)
    assert r.status_code == status, (case, r.text)
    body = r.json()
    assert body["error"] == code and body["message"] and body["request_id"]
    # the service is unharmed: still ready and still answering good frames
    assert HTTP.get(url + "/readyz").status_code == 200
    ok = HTTP.post(url + "/v1/inspect", content=GOOD_JPEG, headers={"Content-Type": "image/jpeg"})
    assert ok.status_code == 200


def test_tiny_but_valid_image_is_fine(url: str) -> None:
    one_px = encode(np.full((1, 1, 3), 200, np.uint8), "PNG")
    r = HTTP.post(url + "/v1/inspect", content=one_px, headers={"Content-Type": "image/png"})
    assert r.status_code == 200
