"""``POST /v1/integrations/label-studio``: Label Studio's webhook receiver.

Applies ANNOTATION_CREATED, ANNOTATION_UPDATED and ANNOTATIONS_DELETED to the store,
idempotently (service/store/webhook.py). With ``label_studio_webhook_secret`` set, the
request must carry it in ``X-Lineinspect-Secret`` (Label Studio's webhook "headers").
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Request

from service.api.data import StoreDep
from service.api.errors import error_responses
from service.config import Settings
from service.errors import InvalidInput, Unauthorized
from service.store import webhook

router = APIRouter(tags=["data"])

SECRET_HEADER = "X-Lineinspect-Secret"


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.store_settings
    return settings


@router.post(
    "/v1/integrations/label-studio",
    summary="Label Studio webhook",
    responses=error_responses(400, 401, 404, 409),
)
def label_studio_webhook(
    request: Request,
    store: StoreDep,
    payload: Annotated[dict[str, Any], Body()],
    secret: Annotated[str | None, Header(alias=SECRET_HEADER)] = None,
) -> dict[str, Any]:
    """Apply one webhook event; unknown actions are acknowledged and ignored."""
    settings = _settings(request)
    expected = settings.label_studio_webhook_secret
    if expected is not None and (
        secret is None or not hmac.compare_digest(secret, expected.get_secret_value())
    ):
        raise Unauthorized(f"the Label Studio webhook needs the {SECRET_HEADER} header")
    if not isinstance(payload, dict):
        raise InvalidInput("the webhook body must be a JSON object")
    return webhook.apply_event(
        store, payload, settings.label_studio_from_name, settings.label_studio_to_name
    )
