"""KServe v2 / Open Inference Protocol over HTTP, on the REST app.

``/v2``, ``/v2/health/{live,ready}``, ``/v2/models/{m}[/versions/{v}]`` with
``/ready``, ``/config`` and ``/infer`` (JSON tensors and the binary data extension),
so ``tritonclient.http`` works unchanged. Errors answer ``{"error": "..."}`` as the
protocol specifies. Tensors are described in service/kserve/core.py.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from service import __version__
from service.api.deps import Ctx
from service.api.inspect import read_body
from service.api.kserve_docs import (
    INFER_BODY,
    INFER_ERRORS,
    META_ERRORS,
    READY_ERRORS,
    Live,
    ModelReadiness,
    Ready,
)
from service.errors import LineInspectError, client_message
from service.kserve.core import EXTENSIONS, SERVER_NAME, KServeCore, ModelMeta, model_ref
from service.kserve.http import HEADER_LENGTH, decompress, encode_response, parse_request


class V2Route(APIRoute):
    """A route whose lineinspect errors answer the v2 error body ``{"error": msg}``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap the handler so a :class:`LineInspectError` becomes a v2 error answer."""
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except LineInspectError as exc:
                body = {"error": client_message(exc.message)}
                return JSONResponse(body, status_code=exc.http_status)

        return guarded


router = APIRouter(prefix="/v2", tags=["kserve v2"], route_class=V2Route)
_META: dict[str, Any] = {"responses": META_ERRORS}


def install(app: FastAPI) -> None:
    """``extra_routers`` hook of :func:`service.api.app.create_app`."""
    app.include_router(router)


def get_core(request: Request, ctx: Ctx) -> KServeCore:
    """The app's :class:`KServeCore`, created once per app context."""
    core: KServeCore | None = getattr(request.app.state, "kserve_core", None)
    if core is None or core.ctx is not ctx:
        core = KServeCore(ctx)
        request.app.state.kserve_core = core
    return core


Core = Annotated[KServeCore, Depends(get_core)]


def _meta_json(meta: ModelMeta) -> dict[str, Any]:
    def tensors(specs: Any) -> list[dict[str, Any]]:
        return [{"name": t.name, "datatype": t.datatype, "shape": t.shape} for t in specs]

    return {
        "name": meta.name,
        "versions": meta.versions,
        "platform": meta.platform,
        "inputs": tensors(meta.inputs),
        "outputs": tensors(meta.outputs),
    }


@router.get("", summary="Server metadata")
async def server_metadata() -> dict[str, Any]:
    """Server name, version and the protocol extensions it supports."""
    return {"name": SERVER_NAME, "version": __version__, "extensions": list(EXTENSIONS)}


@router.get("/health/live", summary="Server liveness", response_model=Live)
async def live() -> JSONResponse:
    """200 while the process serves HTTP."""
    return JSONResponse({"live": True})


@router.get(
    "/health/ready",
    summary="Server readiness",
    response_model=Ready,
    responses={503: {"model": Ready, "description": "Not ready yet."}},
)
async def ready(ctx: Ctx) -> JSONResponse:
    """200 once every configured model is warm, 503 before."""
    ok = ctx.ready
    return JSONResponse({"ready": ok}, status_code=200 if ok else 503)


@router.get("/models/stats", summary="Statistics of every model", **_META)
@router.get("/models/{model_name}/stats", summary="Model statistics", **_META)
@router.get(
    "/models/{model_name}/versions/{model_version}/stats", summary="Model statistics", **_META
)
async def model_statistics(
    core: Core, model_name: str = "", model_version: str = ""
) -> dict[str, Any]:
    """Cumulative inference statistics per model version (Triton's statistics extension:
    ``perf_analyzer`` reads them to split latency into queue and compute)."""
    return {"model_stats": core.statistics(model_name, model_version)}


@router.get("/models/{model_name}", summary="Model metadata", **_META)
@router.get("/models/{model_name}/versions/{model_version}", summary="Model metadata", **_META)
async def model_metadata(model_name: str, core: Core, model_version: str = "") -> dict[str, Any]:
    """Versions, platform, inputs and outputs of a model."""
    return _meta_json(core.metadata(model_name, model_version))


@router.get(
    "/models/{model_name}/ready",
    summary="Model readiness",
    response_model=ModelReadiness,
    responses=READY_ERRORS,
)
@router.get(
    "/models/{model_name}/versions/{model_version}/ready",
    summary="Model readiness",
    response_model=ModelReadiness,
    responses=READY_ERRORS,
)
async def model_ready(model_name: str, core: Core, model_version: str = "") -> JSONResponse:
    """200 when the model version is loaded and warm, 503 otherwise; 404 for a model or
    version the registry does not know."""
    core.ctx.registry.resolve(model_ref(model_name, model_version))
    ok = core.ready(model_name, model_version)
    return JSONResponse({"name": model_name, "ready": ok}, status_code=200 if ok else 503)


@router.get("/models/{model_name}/config", summary="Model configuration", **_META)
@router.get(
    "/models/{model_name}/versions/{model_version}/config", summary="Model configuration", **_META
)
async def model_config(model_name: str, core: Core, model_version: str = "") -> dict[str, Any]:
    """A minimal Triton-style model configuration."""
    return core.config(model_name, model_version)


_INFER: dict[str, Any] = {"responses": INFER_ERRORS, "openapi_extra": {"requestBody": INFER_BODY}}


@router.post("/models/{model_name}/infer", summary="Inference", **_INFER)
@router.post("/models/{model_name}/versions/{model_version}/infer", summary="Inference", **_INFER)
async def infer(request: Request, model_name: str, core: Core, model_version: str = "") -> Response:
    """Inspect a batch of images given as JSON or binary tensors (see service/kserve)."""
    limit = core.ctx.settings.max_body_bytes
    body = decompress(
        await read_body(request, limit), request.headers.get("content-encoding"), limit
    )
    req = parse_request(body, request.headers.get(HEADER_LENGTH))
    result = await core.infer(
        model_name, model_version, req.inputs, req.outputs, req.id, req.timeout_s
    )
    content, header_length = encode_response(result, req)
    if header_length is None:
        return Response(content, media_type="application/json")
    return Response(
        content, media_type="application/octet-stream", headers={HEADER_LENGTH: str(header_length)}
    )
