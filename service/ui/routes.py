"""The operator page's routes: its committed static files at ``/ui`` (open: the page
holds no data; everything it shows comes from the scoped API) and the few settings it
reads (``GET /v1/ui/settings``).

The files are plain HTML, ES modules and CSS in ``service/ui/static/``, committed, with
no build step; only names found there at import are served, so a request never reaches
outside the folder.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from service.api.deps import Ctx
from service.errors import NotFound

STATIC = Path(__file__).parent / "static"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
#: Everything from this origin only; images also from the blob: URLs the page makes of
#: the image bytes it fetched with its token.
CSP = (
    "default-src 'self'; img-src 'self' blob:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",  # revalidate (ETag): a new release shows at once
}
ASSETS = {p.name: p for p in sorted(STATIC.iterdir()) if p.suffix in MEDIA_TYPES}

router = APIRouter(tags=["ui"])


def _file(path: Path) -> Response:
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=_HEADERS)


@router.get("/ui", include_in_schema=False, name="ui_index")
async def index() -> Response:
    """The page."""
    return _file(ASSETS["index.html"])


@router.get("/ui/", include_in_schema=False)
async def index_slash(request: Request) -> Response:
    """``/ui/`` is ``/ui`` (the page's relative links are written for ``/ui``)."""
    return RedirectResponse(str(request.url_for("ui_index")), status_code=308)


@router.get("/ui/{asset}", include_in_schema=False)
async def asset(asset: str) -> Response:
    """One of the page's files."""
    path = ASSETS.get(asset)
    if path is None:
        raise NotFound(f"no file {asset!r} in the operator page")
    return _file(path)


class UiSettings(BaseModel):
    """What the operator page reads from the settings."""

    grafana_url: str | None = Field(
        None, description="The Grafana dashboard the Lines view links to."
    )


@router.get("/v1/ui/settings", response_model=UiSettings, summary="The operator page's settings")
async def ui_settings(ctx: Ctx) -> UiSettings:
    """Settings the operator page shows (``grafana_url``)."""
    return UiSettings(grafana_url=ctx.settings.grafana_url)
