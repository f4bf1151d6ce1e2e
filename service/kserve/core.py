"""lineinspect's KServe v2 model surface, independent of the transport (gRPC or HTTP).

A v2 model is a registry model; ``model_name`` may also be a full reference
(``name@alias``, ``name:version``) and ``model_version`` a version number (or an
alias). Tensors:

* inputs (exactly one per request)
  * ``image_bytes`` BYTES ``[N]`` (or ``[N,1]``): encoded images, one element each.
  * ``image_tensor`` FP32 ``[N,3,S,S]``: images already letterboxed to the model's
    input size, RGB, values 0..1; boxes are then in input pixels.
  * ``image_pixels`` UINT8 ``[N,H,W,C]``: raw camera pixels, ``C`` 1 (greyscale) or 3
    (RGB), any size (the Triton idiom for images); letterboxed by the server like an
    encoded image, boxes in these pixels.
  * input parameter ``image_sha256`` (optional, ``image_bytes`` and ``image_pixels``):
    the hex SHA-256 of each image's bytes, comma-separated in batch order; checked
    before the decode, a mismatch refuses the request (service/integrity.py).
* outputs, ``K`` = the most detections any image of the request has
  * ``boxes`` FP32 ``[N,K,4]``: xyxy in original-image pixels, zero padding.
  * ``scores`` FP32 ``[N,K]``, zero padding.
  * ``class_ids`` INT64 ``[N,K]``: index into the model's ``class_names``, -1 padding.
  * ``count`` INT32 ``[N]``: detections of each image (the valid prefix of each row).

Every image goes through ``ctx.backend`` (the same batcher as REST), so the answers
equal REST's detection records.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from models.processing import RawLayout
from service.context import AppContext
from service.errors import InvalidInput, LineInspectError
from service.frames import Frame
from service.integrity import from_hex_list
from service.kserve.tensors import Tensor
from service.records import DetectionRecord
from service.registry import parse_ref

SERVER_NAME = "lineinspect"
PLATFORM = "onnxruntime_onnx"
EXTENSIONS = ("binary_tensor_data", "model_configuration", "statistics")
INPUT_BYTES, INPUT_TENSOR, INPUT_PIXELS = "image_bytes", "image_tensor", "image_pixels"
INPUTS = (INPUT_BYTES, INPUT_TENSOR, INPUT_PIXELS)
OUTPUTS = {"boxes": "FP32", "scores": "FP32", "class_ids": "INT64", "count": "INT32"}
#: Input parameter: SHA-256 of each image's bytes (an ``image_bytes`` element, or the
#: row-major H*W*C pixel bytes of an ``image_pixels`` image), hex, comma-separated.
DIGEST_PARAM = "image_sha256"
_OUTPUT_SHAPES = {"boxes": [-1, -1, 4], "scores": [-1, -1], "class_ids": [-1, -1], "count": [-1]}


@runtime_checkable
class TensorBackend(Protocol):
    """A backend that also takes preprocessed tensors (the in-process Inspector)."""

    async def inspect_tensor(self, frame: Frame, tensor: np.ndarray) -> DetectionRecord:
        """Inspect a ``[3,S,S]`` float32 tensor."""
        ...


@dataclass(frozen=True)
class TensorSpec:
    """Name, datatype and shape (-1 = variable) of a model input or output."""

    name: str
    datatype: str
    shape: list[int]


@dataclass
class ModelMeta:
    """What ModelMetadata / ``GET /v2/models/{m}`` report."""

    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]


@dataclass
class InferResult:
    """Outputs of one inference request."""

    model_name: str
    model_version: str
    id: str
    outputs: list[Tensor] = field(default_factory=list)


def model_ref(name: str, version: str) -> str:
    """The model reference of a v2 (name, version) pair; raises ModelNotFound if malformed."""
    if version and any(c in name for c in "@:"):
        raise InvalidInput("give either a full model reference as name or a version, not both")
    ref = name if not version else f"{name}:{version}" if version.isdigit() else f"{name}@{version}"
    return str(parse_ref(ref))


async def _all(coros: list[Awaitable[DetectionRecord]]) -> list[DetectionRecord]:
    results = await asyncio.gather(*coros, return_exceptions=True)
    records = [r for r in results if isinstance(r, DetectionRecord)]
    if len(records) == len(results):
        return records
    error = next(r for r in results if isinstance(r, BaseException))
    del results, records
    try:
        raise error
    finally:  # the traceback holds this frame: it must not hold the exception (a cycle)
        del error


def _digests(t: Tensor, n: int) -> list[bytes] | None:
    """The per-image SHA-256 digests of the input parameter ``image_sha256`` (hex,
    comma-separated, one per image of the batch), None when not given."""
    value = t.parameters.get(DIGEST_PARAM)
    if value is None:
        return None
    if t.name == INPUT_TENSOR:
        raise InvalidInput(
            f"{DIGEST_PARAM!r} covers image bytes: give it with {INPUT_BYTES!r} or {INPUT_PIXELS!r}"
        )
    return from_hex_list(value, n, DIGEST_PARAM)


class KServeCore:
    """Metadata, readiness and inference of v2 models on one :class:`AppContext`."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self._classes: dict[tuple[str, int], dict[str, int]] = {}

    def metadata(self, name: str, version: str = "") -> ModelMeta:
        """Versions, platform and tensors of a model (reads the registry)."""
        mv = self.ctx.registry.resolve(model_ref(name, version))
        size = int(mv.card.get("input_size") or mv.card.get("spec", {}).get("imgsz", -1))
        return ModelMeta(
            name=name,
            versions=[str(v) for v in self.ctx.registry.versions(mv.name)],
            platform=PLATFORM,
            inputs=[
                TensorSpec(INPUT_BYTES, "BYTES", [-1]),
                TensorSpec(INPUT_TENSOR, "FP32", [-1, 3, size, size]),
                TensorSpec(INPUT_PIXELS, "UINT8", [-1, -1, -1, -1]),
            ],
            outputs=[TensorSpec(n, dt, _OUTPUT_SHAPES[n]) for n, dt in OUTPUTS.items()],
        )

    def config(self, name: str, version: str = "") -> dict[str, Any]:
        """A minimal Triton-style model configuration (``max_batch_size`` 0: the batch
        dimension is part of every shape)."""
        meta = self.metadata(name, version)
        to_type = {"BYTES": "TYPE_STRING", "FP32": "TYPE_FP32"}
        to_type |= {"INT64": "TYPE_INT64", "INT32": "TYPE_INT32", "UINT8": "TYPE_UINT8"}

        def entry(t: TensorSpec) -> dict[str, Any]:
            return {"name": t.name, "data_type": to_type[t.datatype], "dims": t.shape}

        return {
            "name": meta.name,
            "platform": PLATFORM,
            "backend": "onnxruntime",
            "max_batch_size": 0,
            "input": [{**entry(t), "optional": True} for t in meta.inputs],
            "output": [entry(t) for t in meta.outputs],
        }

    def statistics(self, name: str = "", version: str = "") -> list[dict[str, Any]]:
        """Cumulative statistics (v2 ``model_stats``, see service/model_stats.py): of one
        version, of every registered version of ``name`` when no version is given, or of
        every model when no name is given. Raises ModelNotFound for an unknown model."""
        reg = self.ctx.registry
        if not name:
            keys = [(n, v) for n in reg.names() for v in reg.versions(n)]
        elif version or any(c in name for c in "@:"):
            mv = reg.resolve(model_ref(name, version))
            keys = [(mv.name, mv.version)]
        else:
            keys = [(name, v) for v in reg.versions(name)]
        return self.ctx.metrics.model_stats.snapshot(keys)

    def ready(self, name: str, version: str = "") -> bool:
        """True when the server is ready and this model's version is loaded and warm."""
        try:
            ref = parse_ref(model_ref(name, version))
            if not self.ctx.ready:
                return False
            manager = self.ctx.manager
            if manager is None:  # remote workers serve it: the registry must know it
                self.ctx.registry.resolve(ref)
                return True
        except LineInspectError:
            return False
        served = (
            ref.version
            if ref.version is not None
            else manager.aliases(ref.name).get(ref.alias or "")
        )
        return any(r.key == (ref.name, served) for r in manager.loaded())

    def _class_index(self, name: str, version: int) -> dict[str, int]:
        key = (name, version)
        if key not in self._classes:
            names = self.ctx.registry.get(name, version).card.get("class_names", [])
            self._classes[key] = {str(n): i for i, n in enumerate(names)}
        return self._classes[key]

    async def infer(
        self,
        name: str,
        version: str,
        inputs: list[Tensor],
        requested: list[str] | None = None,
        request_id: str = "",
        timeout_s: float | None = None,
    ) -> InferResult:
        """Inspect every image of the request; outputs in ``requested`` order (default all)."""
        ref = model_ref(name, version)
        names = [t.name for t in inputs]
        if len(inputs) != 1 or names[0] not in INPUTS:
            raise InvalidInput(f"send exactly one input of {list(INPUTS)}; got {names}")
        wanted = list(requested or OUTPUTS)
        unknown = [n for n in wanted if n not in OUTPUTS]
        if unknown:
            raise InvalidInput(f"unknown outputs {unknown}; this model has {list(OUTPUTS)}")
        budget = self.ctx.settings.default_deadline_ms / 1000
        deadline = time.time() + (budget if timeout_s is None else min(budget, timeout_s))
        records = await _all(self._submit(inputs[0], ref, deadline, request_id))
        outputs = self._outputs(records)
        return InferResult(
            model_name=name,
            model_version=str(records[0].model.version),
            id=request_id,
            outputs=[outputs[n] for n in wanted],
        )

    def _submit(
        self, t: Tensor, ref: str, deadline: float, rid: str
    ) -> list[Awaitable[DetectionRecord]]:
        n = t.shape[0] if t.shape else 0
        limit = self.ctx.settings.queue_size
        if not 1 <= n <= limit:
            raise InvalidInput(f"input {t.name!r}: batch of {n} images, expected 1..{limit}")

        digests = _digests(t, n)

        def frame(i: int, data: bytes = b"", pixels: RawLayout | None = None) -> Frame:
            sha = digests[i] if digests else None
            f = Frame(data=data, deadline=deadline, model_ref=ref, pixels=pixels, image_sha256=sha)
            if rid:
                f.frame_id = f"{rid}:{i}"
            return f

        if t.name == INPUT_BYTES:
            if (
                t.datatype != "BYTES"
                or t.shape not in ([n], [n, 1])
                or not isinstance(t.data, list)
            ):
                raise InvalidInput(f"{INPUT_BYTES!r} must be BYTES of shape [N] or [N,1]")
            return [self.ctx.backend.inspect(frame(i, e)) for i, e in enumerate(t.data)]
        if t.name == INPUT_PIXELS:
            if (
                t.datatype != "UINT8"
                or len(t.shape) != 4
                or t.shape[3] not in (1, 3)
                or isinstance(t.data, list)
            ):
                raise InvalidInput(f"{INPUT_PIXELS!r} must be UINT8 of shape [N,H,W,1|3]")
            h, w, c = t.shape[1:]
            px = RawLayout(w, h, "mono8" if c == 1 else "rgb8")
            img = np.ascontiguousarray(t.data, dtype=np.uint8)
            return [self.ctx.backend.inspect(frame(i, img[i].tobytes(), px)) for i in range(n)]
        backend = self.ctx.backend
        if not isinstance(backend, TensorBackend):
            raise InvalidInput(
                f"{INPUT_TENSOR!r} needs the in-process backend; send {INPUT_BYTES!r}"
            )
        if t.datatype != "FP32" or len(t.shape) != 4 or t.shape[1] != 3 or isinstance(t.data, list):
            raise InvalidInput(f"{INPUT_TENSOR!r} must be FP32 of shape [N,3,S,S]")
        arr = np.asarray(t.data, dtype=np.float32)
        return [backend.inspect_tensor(frame(i), arr[i]) for i in range(n)]

    def _outputs(self, records: list[DetectionRecord]) -> dict[str, Tensor]:
        n, k = len(records), max((len(r.detections) for r in records), default=0)
        boxes, scores = np.zeros((n, k, 4), np.float32), np.zeros((n, k), np.float32)
        class_ids, count = np.full((n, k), -1, np.int64), np.zeros(n, np.int32)
        for i, rec in enumerate(records):
            index = self._class_index(rec.model.name, rec.model.version)
            count[i] = len(rec.detections)
            for j, d in enumerate(rec.detections):
                boxes[i, j], scores[i, j], class_ids[i, j] = d.box, d.score, index.get(d.label, -1)
        arrays: dict[str, np.ndarray] = {
            "boxes": boxes,
            "scores": scores,
            "class_ids": class_ids,
            "count": count,
        }
        return {name: Tensor(name, OUTPUTS[name], list(a.shape), a) for name, a in arrays.items()}
