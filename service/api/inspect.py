"""``POST /v1/inspect``: one image in, one detection record out."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive

from models.processing import RawLayout
from models.processing import pixel_format as pixel_format_of
from service.api.deps import Ctx
from service.api.errors import ErrorBody
from service.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType
from service.frames import Frame
from service.integrity import CONTENT_DIGEST, from_content_digest
from service.records import DetectionRecord

router = APIRouter(tags=["inspection"])

IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/bmp", "image/x-ms-bmp", "image/tiff"})
RAW_TYPE = "application/octet-stream"  # raw camera pixels, with pixel_format/width/height

_ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorBody, "description": d}
    for s, d in {
        400: "Empty, truncated or corrupt image, image bytes that do not match their "
        "`Content-Digest`, a raw buffer whose size does not match, a bad parameter, or "
        "no digest where `require_image_digest` is set.",
        404: "Unknown model reference.",
        413: "Body over `max_body_bytes` or image over `max_pixels`.",
        415: "Content type is not an accepted image type, multipart/form-data or "
        "application/octet-stream (raw pixels).",
        429: "Queue full: retry after `Retry-After` seconds.",
        503: "Not ready (models warming up) or a backing service is down.",
        504: "The frame's deadline passed before it could be inspected.",
    }.items()
}

_REQUEST_BODY = {
    "required": True,
    "description": "The image as the raw body, or as multipart field `image`; or the "
    "camera's raw pixel buffer as application/octet-stream with `pixel_format`, `width` "
    "and `height`.",
    "content": {
        **{
            t: {"schema": {"type": "string", "format": "binary"}}
            for t in (*sorted(IMAGE_TYPES), RAW_TYPE)
        },
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"image": {"type": "string", "format": "binary"}},
                "required": ["image"],
            },
            "encoding": {
                "image": {
                    "headers": {
                        "Content-Digest": {
                            "description": "RFC 9530 digest of the image bytes, "
                            "`sha-256=:<base64>:`, checked before the decode.",
                            "schema": {"type": "string"},
                        }
                    }
                }
            },
        },
    },
}


async def read_body(request: Request, limit: int) -> bytes:
    """Read the body, refusing it as soon as it exceeds ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body of {declared} bytes is over the limit of {limit}")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"body is over the limit of {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:  # the client hung up mid-body: nothing to answer, not a bug
        raise InvalidInput("client disconnected before the body was complete") from None
    return b"".join(chunks)


def raw_layout(
    ctype: str, pixel_format: str | None, width: int | None, height: int | None
) -> RawLayout | None:
    """The layout of a raw-pixel body (``application/octet-stream``), None for an image."""
    if ctype != RAW_TYPE:
        if pixel_format or width or height:
            raise InvalidInput("pixel_format, width and height need application/octet-stream")
        return None
    fmt = pixel_format_of(pixel_format or "")
    if fmt is None or not width or not height:
        raise InvalidInput(
            "an application/octet-stream body is raw pixels: give pixel_format (Mono8, RGB8 "
            "or BGR8), width and height"
        )
    return RawLayout(width, height, fmt)


def content_type(request: Request) -> str:
    """The request's media type, lower-cased, without parameters."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _replay(body: bytes) -> Receive:
    """An ASGI ``receive`` that delivers ``body`` in one message."""

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def image_from_request(
    request: Request, limit: int, content_digest: str | None = None
) -> tuple[bytes, str | None, bytes | None]:
    """The image bytes, for multipart uploads the file name, and the client's SHA-256 of
    the bytes: from ``Content-Digest`` on the request (raw body) or on the ``image``
    part (multipart), see :mod:`service.integrity`."""
    ctype = content_type(request)
    if ctype == "multipart/form-data":
        if content_digest is not None:
            raise InvalidInput(
                "for multipart/form-data send Content-Digest on the 'image' part (the "
                "request's would cover the whole form)"
            )
        # The form is parsed from the body already read under the limit, replayed to a
        # request over the same scope; the form's files close when the block ends.
        body = await read_body(request, limit)
        async with Request(request.scope, _replay(body)).form(
            max_files=1, max_fields=16, max_part_size=limit
        ) as form:
            upload = form.get("image")
            if not isinstance(upload, UploadFile):
                raise InvalidInput("multipart request has no file field 'image'")
            part_digest = upload.headers.get(CONTENT_DIGEST)
            digest = None if part_digest is None else from_content_digest(part_digest)
            return await upload.read(), upload.filename, digest
    if ctype != RAW_TYPE and ctype not in IMAGE_TYPES:
        shown = ctype or "none"
        raise UnsupportedMediaType(
            f"content type {shown!r} is not accepted; send image/jpeg, image/png, image/bmp, "
            "image/tiff, multipart/form-data with field 'image', or raw pixels as "
            "application/octet-stream"
        )
    digest = None if content_digest is None else from_content_digest(content_digest)
    return await read_body(request, limit), None, digest


@router.post(
    "/v1/inspect",
    response_model=DetectionRecord,
    responses=_ERRORS,
    summary="Inspect one image",
    openapi_extra={"requestBody": _REQUEST_BODY},
)
async def inspect(
    request: Request,
    ctx: Ctx,
    line: Annotated[str | None, Query(max_length=64, description="Production line id.")] = None,
    camera: Annotated[str | None, Query(max_length=64, description="Camera id.")] = None,
    frame_id: Annotated[str | None, Query(max_length=128, description="Client frame id.")] = None,
    model: Annotated[
        str | None, Query(max_length=128, description="name, name@alias or name:version.")
    ] = None,
    deadline_ms: Annotated[
        float | None, Query(gt=0, le=600_000, description="Time budget.")
    ] = None,
    image_name: Annotated[
        str | None, Query(max_length=256, description="Recorded as `image`.")
    ] = None,
    pixel_format: Annotated[
        str | None, Query(max_length=16, description="Raw body: Mono8, RGB8 or BGR8.")
    ] = None,
    width: Annotated[int | None, Query(gt=0, le=65_535, description="Raw body width.")] = None,
    height: Annotated[int | None, Query(gt=0, le=65_535, description="Raw body height.")] = None,
    x_line: Annotated[str | None, Header(max_length=64)] = None,
    x_camera: Annotated[str | None, Header(max_length=64)] = None,
    x_frame_id: Annotated[str | None, Header(max_length=128)] = None,
    x_model: Annotated[str | None, Header(max_length=128)] = None,
    x_deadline_ms: Annotated[float | None, Header(gt=0, le=600_000)] = None,
    content_digest: Annotated[
        str | None,
        Header(
            max_length=1024,
            description="RFC 9530 digest of a raw body, `sha-256=:<base64>:`: checked "
            "before the decode, a mismatch is refused (400 `invalid_image`). For "
            "multipart, put it on the `image` part instead.",
        ),
    ] = None,
) -> Response:
    """Inspect one image and answer its detection record (boxes in original pixels).

    Line, camera, frame id and model come from query parameters or the `X-Line`,
    `X-Camera`, `X-Frame-Id`, `X-Model` headers (query wins). An RFC 9530
    `Content-Digest: sha-256=:<base64>:` (on the request for a raw body, on the `image`
    part for multipart) is checked before the image is decoded.
    """
    pixels = raw_layout(content_type(request), pixel_format, width, height)
    data, filename, digest = await image_from_request(
        request, ctx.settings.max_body_bytes, content_digest
    )
    budget = deadline_ms or x_deadline_ms or ctx.settings.default_deadline_ms
    frame = Frame(
        data=data,
        deadline=time.time() + budget / 1000,
        line=line or x_line,
        camera=camera or x_camera,
        model_ref=model or x_model,
        image_name=image_name or filename,
        frame_id=str(frame_id or x_frame_id or ""),
        pixels=pixels,
        image_sha256=digest,
    )
    record = await ctx.backend.inspect(frame)
    # Serialise once ourselves: returning a Response skips FastAPI's re-validation of the
    # model (measurable on the hot path); response_model above still documents the shape.
    return Response(record.model_dump_json(), media_type="application/json")
