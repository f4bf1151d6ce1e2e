"""What a job asks for, validated, and its idempotency key.

The key is the sha256 of kind + parameters + snapshot fingerprint + base refs, in a
canonical JSON form, so asking twice for the same work never trains twice. Base refs
are the models a job starts from (``init_from``, ``teacher``), pinned when asked: a
registry ref to ``name:version``, a file to its size and modification time. A new
production version therefore makes a new key, and the worker runs the pinned version.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, JsonValue, ValidationError, field_validator

from service.errors import InvalidInput, LineInspectError
from service.jobs.pipeline_spec import PipelineSpec
from service.jobs.schema import JobKind
from service.registry import Registry, parse_ref
from service.store import datasets, snapshots
from service.store.db import MAX_INT
from service.store.store import Store

#: Options of the training CLI the worker sets itself (run directory, resume, threads).
RESERVED = frozenset({"out", "resume", "threads", "json_out"})
#: Parameters that name the model a job starts from (``from``: a prune job's source; the
#: last three: a pipeline's).
BASE_REF_PARAMS = (
    "init_from",
    "from",
    "teacher",
    "teacher_ref",
    "teacher_init_from",
    "student_init_from",
)
#: The kinds a request may ask for, with the parameters each needs.
REQUIRED = {
    JobKind.TRAIN: ("data",),
    JobKind.DISTIL: ("data", "teacher"),
    JobKind.PRUNE: ("from", "data", "ratio"),
    JobKind.EVALUATE: ("ckpt",),
    JobKind.EXPORT: ("ckpt",),
    JobKind.PIPELINE: ("lineage", "dataset"),
}
#: What a worker claims from the queue (a pipeline's steps are run by its pipeline).
RUNNABLE = frozenset(REQUIRED)
#: The base ref naming a pipeline step's place in it (``<pipeline id>/<step>``).
STEP_PIN = "pipeline_step"
FILE_PIN = "file:"
_PARAM = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
Scalar = str | int | float | bool
#: The parameter names a request may use, as its schema states them.
_PARAM_NAMES: dict[str, JsonValue] = {
    "pattern": _PARAM.pattern,
    "not": {"enum": [*sorted(RESERVED)]},
}


class JobRequest(BaseModel):
    """Body of ``POST /v1/jobs``. ``params`` are options of the training CLI command the
    kind maps to (``train``, ``distil``, ``prune``, ``val``, ``export``), named as the
    option with ``_`` for ``-`` (``--init-from`` → ``init_from``, ``--mosaic`` →
    ``mosaic``); ``true`` adds a flag, ``false`` leaves it out, a list repeats the
    option."""

    kind: JobKind = Field(
        examples=["train"],
        description="Runnable: train, distil, prune, evaluate, export, pipeline (snapshot, gate, "
        "register and policy are steps of a pipeline only).",
    )
    params: dict[str, Scalar | list[Scalar]] = Field(
        default_factory=dict,
        examples=[{"data": "/data/neu-det/data.yaml", "arch": "s-model", "epochs": 30}],
        description="train and distil need 'data' (distil also 'teacher'), prune 'from', "
        "'data' and 'ratio', evaluate and export 'ckpt', pipeline 'lineage' and 'dataset' "
        "(docs/learning.md, docs/compression.md).",
        json_schema_extra={"propertyNames": _PARAM_NAMES},
    )
    snapshot: str | None = Field(
        None,
        max_length=128,
        description="Fingerprint of the data snapshot; default: "
        "computed from the data.yaml parameter's files (names, sizes, modification times).",
    )
    base_refs: dict[str, str] = Field(
        default_factory=dict, description="Pinned base models; default: from the parameters."
    )
    parent_id: int | None = Field(
        None, ge=1, le=MAX_INT, description="The pipeline job this step is of."
    )

    @field_validator("params")
    @classmethod
    def _names(cls, v: dict[str, Any]) -> dict[str, Any]:
        bad = sorted(k for k in v if not _PARAM.fullmatch(k))
        if bad:
            raise ValueError(f"parameter names must be snake_case option names: {bad}")
        reserved = sorted(RESERVED & set(v))
        if reserved:
            raise ValueError(f"set by the worker, not by a job: {reserved}")
        return v


def check_runnable(req: JobRequest) -> None:
    """What the request's schema does not say: its kind runs here and it has the
    parameters the kind needs; :class:`InvalidInput` otherwise (a 400)."""
    if req.kind not in RUNNABLE:
        runnable = ", ".join(str(k) for k in REQUIRED)
        raise InvalidInput(f"'{req.kind}' jobs run as pipeline steps only (runnable: {runnable})")
    missing = [p for p in REQUIRED[req.kind] if p not in req.params]
    if missing:
        raise InvalidInput(f"{req.kind} jobs need the parameters {missing}")
    if req.kind is JobKind.PIPELINE:
        pipeline_spec(req.params)


def pipeline_spec(params: dict[str, Any]) -> PipelineSpec:
    """A pipeline's parameters, validated; :class:`InvalidInput` naming what is wrong."""
    try:
        return PipelineSpec.model_validate(params)
    except ValidationError as exc:
        msg = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'params'}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidInput(f"pipeline parameters: {msg}") from exc


def idempotency_key(
    kind: str, params: dict[str, Any], snapshot: str | None, base_refs: dict[str, str]
) -> str:
    """sha256 of the canonical JSON of what defines the work."""
    doc = {"kind": str(kind), "params": params, "snapshot": snapshot, "base_refs": base_refs}
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _file_pin(path: Path) -> str:
    st = path.stat()
    return f"{FILE_PIN}{path.resolve()}@{st.st_size}:{st.st_mtime_ns}"


def pin_base_refs(params: dict[str, Any], registry: Registry | None) -> dict[str, str]:
    """Pin each base-model parameter: a file to its identity, a registry ref to
    ``name:version``; a ref that resolves nowhere stays as given (the run will say why)."""
    pins: dict[str, str] = {}
    for name in BASE_REF_PARAMS:
        value = params.get(name)
        if not isinstance(value, str) or not value:
            continue
        path = Path(value)
        if path.is_file():
            pins[name] = _file_pin(path)
            continue
        try:
            mv = registry.resolve(parse_ref(value)) if registry else None
        except LineInspectError:
            mv = None
        pins[name] = f"{mv.name}:{mv.version}" if mv else value
    return pins


def data_fingerprint(data_yaml: str | Path) -> str | None:
    """sha256 over a data.yaml and the names, sizes and modification times of the files
    under its dataset root (``path:``, else the file's directory); None when absent.
    Content hashes are the data store's snapshots' business; this is what a plain
    directory can offer cheaply."""
    p = Path(data_yaml)
    if not p.is_file():
        return None
    raw = p.read_bytes()
    try:
        cfg = yaml.safe_load(raw) or {}
    except yaml.YAMLError:
        cfg = {}
    root = Path(cfg["path"]) if isinstance(cfg, dict) and cfg.get("path") else Path(".")
    root = root if root.is_absolute() else p.parent / root
    h = hashlib.sha256(raw)
    if root.is_dir():
        for f in sorted(x for x in root.rglob("*") if x.is_file()):
            st = f.stat()
            h.update(f"{f.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return "files:" + h.hexdigest()[:40]


def store_fingerprint(store: Store, dataset: str) -> str:
    """``store:<fingerprint>`` of the snapshot ``dataset`` would get now."""
    with store.transaction() as s:
        return "store:" + snapshots.current_fingerprint(s, datasets.get(s, dataset))


def resolve_request(
    req: JobRequest, registry: Registry | None, store: Store | None = None
) -> tuple[str | None, dict[str, str]]:
    """The snapshot fingerprint and base refs a request stands for (its own, if given),
    once :func:`check_runnable` passes. A pipeline's snapshot is its dataset's content
    fingerprint in ``store`` now, so new labels make a new pipeline."""
    check_runnable(req)
    snapshot = req.snapshot
    if snapshot is None and req.kind is JobKind.PIPELINE:
        if store is None:
            raise InvalidInput("a pipeline needs the data store to fingerprint its dataset")
        snapshot = store_fingerprint(store, str(req.params["dataset"]))
    elif snapshot is None and isinstance(req.params.get("data"), str):
        snapshot = data_fingerprint(str(req.params["data"]))
    base = {**pin_base_refs(req.params, registry), **req.base_refs}
    return snapshot, base
