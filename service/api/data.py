"""Data store endpoints: datasets, samples, labels and images (the ``label`` scope).

All routes hang off the one :data:`router`, so an auth dependency is added in one place.
Handlers are plain functions: FastAPI runs them in its thread pool, off the event loop,
because the store's database calls block.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field

from service.api.errors import error_responses
from service.errors import InvalidInput, NotFound
from service.store import datasets, intake, labels, samples
from service.store.db import MAX_INT
from service.store.schema import Dataset
from service.store.store import Store

router = APIRouter(tags=["data"])


def get_store(request: Request) -> Store:
    """FastAPI dependency: the app's data store (opened in the lifespan)."""
    store: Store = request.app.state.store
    return store


StoreDep = Annotated[Store, Depends(get_store)]


class LabelsBody(BaseModel):
    """New labels for a sample: ``boxes`` (record convention) or ``ok`` / ``rejected``."""

    boxes: list[dict[str, Any]] | None = Field(
        None, examples=[[{"box": [4.0, 10.0, 96.0, 180.0], "label": "crazing"}]]
    )
    ok: bool = Field(False, description="The image shows no defect.")
    rejected: bool = Field(False, description="The image is unusable.")
    author: str = Field("api", max_length=128)
    origin: str = Field("manual", examples=["manual", "prediction", "prediction-changed"])
    add_classes: bool = Field(False, description="Widen the class list with unknown classes.")


def _state(boxes: list[Any] | None, ok: bool, rejected: bool) -> tuple[str, list[Any]]:
    if sum((boxes is not None, ok, rejected)) != 1:
        raise InvalidInput("give exactly one of 'boxes', 'ok': true or 'rejected': true")
    if ok:
        return "ok", []
    if rejected:
        return "rejected", []
    return "labelled", list(boxes or [])


def _parse_labels(raw: str | None) -> tuple[str | None, list[Any]]:
    if raw is None or raw == "":
        return None, []
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise InvalidInput(f"'labels' is not JSON: {exc}") from exc
    if isinstance(value, list):
        return "labelled", value
    if isinstance(value, dict):
        return _state(value.get("boxes"), bool(value.get("ok")), bool(value.get("rejected")))
    raise InvalidInput("'labels' must be a list of boxes or an object")


@router.get("/v1/datasets", summary="List datasets")
def list_datasets(store: StoreDep) -> list[dict[str, Any]]:
    """Every dataset with its counts."""
    with store.transaction() as s:
        return [datasets.counts(s, ds) for ds in datasets.list_all(s)]


@router.get(
    "/v1/datasets/{name}",
    summary="A dataset: counts per class, split and state",
    responses=error_responses(404),
)
def show_dataset(name: str, store: StoreDep) -> dict[str, Any]:
    """Counts of one dataset."""
    with store.transaction() as s:
        return datasets.counts(s, datasets.get(s, name))


@router.post(
    "/v1/datasets/{name}/samples",
    status_code=201,
    summary="Add an image (+ labels)",
    responses=error_responses(400, 413),
)
def add_sample(
    name: str,
    store: StoreDep,
    image: Annotated[UploadFile, File(description="The image (JPEG, PNG, BMP, TIFF).")],
    labels_json: Annotated[
        str | None,
        Form(
            alias="labels", description='Boxes [{"box": [x1,y1,x2,y2], "label": n}] or {"ok": true}'
        ),
    ] = None,
    classes: Annotated[
        str | None, Form(description="JSON class list, to create the dataset.")
    ] = None,
    line: Annotated[str | None, Form(max_length=128)] = None,
    camera: Annotated[str | None, Form(max_length=128)] = None,
    frame_id: Annotated[str | None, Form(max_length=128)] = None,
    author: Annotated[str, Form(max_length=128)] = "api",
    origin: Annotated[str, Form()] = "manual",
    add_classes: Annotated[bool, Form()] = False,
) -> dict[str, Any]:
    """Take one image in; the sample and its labels commit together or not at all."""
    state, boxes = _parse_labels(labels_json)
    class_list: list[str] | None = None
    if classes:
        try:
            class_list = [str(c) for c in json.loads(classes)]
        except (ValueError, TypeError) as exc:
            raise InvalidInput(f"'classes' must be a JSON list of names: {exc}") from exc
    data = image.file.read()
    item = intake.Item(
        data=data,
        boxes=boxes,
        state=state,
        source="upload",
        origin=origin,
        author=author,
        name=image.filename,
        line=line,
        camera=camera,
        frame_id=frame_id,
    )
    with store.transaction() as s:
        ds, _ = datasets.get_or_create(s, name, class_list, store.val_fraction)
        sample, outcome = intake.take(s, store.blobs, ds, item, store.max_pixels, add_classes)
        return {"outcome": outcome, **samples.summary(sample, ds.name)}


#: A sample named by its sha256: 400 for a malformed one, 404 when absent, 409 when it is
#: in several datasets and ``dataset`` names none.
_SAMPLE_ERRORS = error_responses(400, 404, 409)


@router.put(
    "/v1/samples/{sha256}/labels",
    summary="Set a sample's labels (new version)",
    responses=_SAMPLE_ERRORS,
)
def put_labels(
    sha256: str, body: LabelsBody, store: StoreDep, dataset: str | None = None
) -> dict[str, Any]:
    """Record a new label version (a no-op when equal to the current one)."""
    state, boxes = _state(body.boxes, body.ok, body.rejected)
    with store.transaction() as s:
        ds = datasets.get(s, dataset) if dataset else None
        sample = samples.get(s, sha256, ds)
        ds = ds or s.get_one(Dataset, sample.dataset_id)
        if state == "labelled":
            datasets.widen(ds, [str(b.get("label")) for b in boxes], body.add_classes)
        valid = labels.validate_boxes(boxes, ds.classes, sample.width, sample.height)
        changed = labels.apply(s, sample, state, valid, body.author, body.origin)
        return {"changed": changed, **samples.summary(sample, ds.name)}


@router.get("/v1/samples", summary="List samples (paged)", responses=error_responses(400, 404))
def list_samples(
    store: StoreDep,
    dataset: str | None = None,
    state: str | None = None,
    sampler: str | None = None,
    line: str | None = None,
    camera: str | None = None,
    predicted_class: Annotated[
        str | None, Query(description="The majority class of the capture's prediction.")
    ] = None,
    order: Annotated[
        Literal["newest", "uncertain"],
        Query(description="newest first, or the least confident predicted detection first."),
    ] = "newest",
    offset: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
    limit: Annotated[int, Query(ge=1, le=samples.MAX_PAGE)] = 100,
) -> dict[str, Any]:
    """Samples filtered by dataset, state, sampler, line, camera and predicted class;
    newest first or most uncertain first (the review queue: ``state=unlabelled``)."""
    with store.transaction() as s:
        ds = datasets.get(s, dataset) if dataset else None
        rows, total = samples.page(
            s,
            ds,
            state,
            sampler,
            line,
            offset,
            limit,
            camera=camera,
            predicted_class=predicted_class,
            order=order,
        )
        names = {d.id: d.name for d in datasets.list_all(s)}
        return {
            "total": total,
            "offset": offset,
            "limit": limit,
            "items": [samples.summary(r, names[r.dataset_id]) for r in rows],
        }


@router.get(
    "/v1/samples/{sha256}", summary="A sample with its label history", responses=_SAMPLE_ERRORS
)
def show_sample(sha256: str, store: StoreDep, dataset: str | None = None) -> dict[str, Any]:
    """The sample, its current labels and every label version."""
    with store.transaction() as s:
        ds = datasets.get(s, dataset) if dataset else None
        sample = samples.get(s, sha256, ds)
        name = ds.name if ds else s.get_one(Dataset, sample.dataset_id).name
        hist = [
            {
                "version": h.version,
                "state": h.state,
                "boxes": h.boxes,
                "author": h.author,
                "origin": h.origin,
                "created_at": h.created_at.isoformat(),
            }
            for h in labels.history(s, sample)
        ]
        return {**samples.summary(sample, name), "record": sample.record, "labels": hist}


_IMAGE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The image as it was taken in.",
        "content": {
            t: {"schema": {"type": "string", "format": "binary"}}
            for t in intake.MEDIA_TYPES.values()
        },
    },
}


@router.get(
    "/v1/samples/{sha256}/image",
    summary="A sample's image bytes",
    response_class=Response,
    responses={**_IMAGE, **_SAMPLE_ERRORS},
)
def sample_image(sha256: str, store: StoreDep, dataset: str | None = None) -> Response:
    """The stored image, with its media type (404 once retention removed the pixels)."""
    with store.transaction() as s:
        ds = datasets.get(s, dataset) if dataset else None
        sample = samples.get(s, sha256, ds)
        media_type = sample.media_type
    try:
        data = store.blobs.read(sample.sha256)
    except FileNotFoundError as exc:
        raise NotFound(f"the pixels of sample {sha256} are no longer stored") from exc
    return Response(data, media_type=media_type, headers={"Cache-Control": "max-age=86400"})
