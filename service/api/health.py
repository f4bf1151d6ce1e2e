"""Liveness, readiness and the Prometheus endpoint."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from service.api.deps import Ctx

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    """200 while the process serves HTTP at all."""
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness", responses={503: {"description": "Not ready yet."}})
async def readyz(ctx: Ctx) -> JSONResponse:
    """200 once every configured model is warm (and the queue reachable); 503 before.
    With local models, ``models`` names the execution provider each one runs on."""
    ready = ctx.ready
    body: dict[str, object] = {"ready": ready}
    if ctx.manager is not None:
        body["models"] = ctx.manager.provider_report()
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(ctx: Ctx) -> Response:
    """Text exposition of every lineinspect metric of this process."""
    return Response(ctx.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
