"""ONNX Runtime session of one registered model version (torch-free)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence

import numpy as np
import onnxruntime as ort

from models.processing import SPEC_METADATA_KEY, ModelSpec
from service.errors import ProviderUnavailable, RegistryError
from service.registry import ModelVersion

log = logging.getLogger(__name__)


def select_providers(preferred: Sequence[str]) -> list[str]:
    """The preferred execution providers this onnxruntime build has, CPU always last."""
    available = set(ort.get_available_providers())
    chosen = [p for p in preferred if p in available and p != "CPUExecutionProvider"]
    return [*chosen, "CPUExecutionProvider"]


def check_providers(key: str, requested: Sequence[str], got: Sequence[str], strict: bool) -> None:
    """Warn (or, ``strict``, raise :class:`ProviderUnavailable`) when a model did not get
    every requested execution provider.

    ONNX Runtime falls back to CPU without an error when a provider's libraries do not
    load (e.g. an onnxruntime-gpu wheel built for another CUDA major than the image's),
    so this compares what was asked with what the session reports it uses."""
    missing = [p for p in requested if p not in got]
    if not missing:
        return
    message = (
        f"model {key} runs on {got[0] if got else 'no provider'}: requested execution "
        f"provider(s) {missing} not available (this onnxruntime offers "
        f"{ort.get_available_providers()}; a CUDA/cuDNN major that does not match the "
        "onnxruntime-gpu wheel makes it fall back to CPU)"
    )
    if strict:
        raise ProviderUnavailable(message + "; strict_providers refuses to serve it")
    log.warning("%s; set strict_providers to refuse this", message)


def auto_intra_op_threads(requested: int, concurrent_runs: int) -> int:
    """ORT intra-op threads per session: ``requested``, or for 0 the usable cores shared
    out among the ``concurrent_runs`` threads that call ``run`` at once.

    ORT's own default (one thread per core for every concurrent ``run``) oversubscribes
    the cores as soon as two batches overlap: on 2 cores, two inference threads x two
    intra-op threads cost ~20 % more CPU per frame than two single-threaded runs
    (docs/benchmarks.md)."""
    if requested > 0:
        return requested
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // max(1, concurrent_runs))


def read_spec(session: ort.InferenceSession, card: dict[str, object]) -> ModelSpec:
    """The model's :class:`ModelSpec` from ONNX metadata (card.json as a fallback)."""
    meta = session.get_modelmeta().custom_metadata_map
    try:
        if SPEC_METADATA_KEY in meta:
            return ModelSpec.from_json(meta[SPEC_METADATA_KEY])
        if isinstance(card.get("spec"), dict):
            return ModelSpec.from_dict(card["spec"])  # type: ignore[arg-type]
    except ValueError as exc:
        raise RegistryError(f"invalid model spec: {exc}") from exc
    raise RegistryError(f"model has no '{SPEC_METADATA_KEY}' metadata and no spec in its card")


class ModelSession:
    """An ``InferenceSession`` plus what post-processing needs; thread-safe ``run``."""

    def __init__(
        self,
        version: ModelVersion,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        intra_op_threads: int = 0,
        inter_op_threads: int = 1,
        spinning: bool = False,
        strict_providers: bool = False,
    ) -> None:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = intra_op_threads
        opts.inter_op_num_threads = inter_op_threads
        flag = "1" if spinning else "0"
        opts.add_session_config_entry("session.intra_op.allow_spinning", flag)
        opts.add_session_config_entry("session.inter_op.allow_spinning", flag)
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                str(version.onnx_path), sess_options=opts, providers=select_providers(providers)
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise RegistryError(f"cannot load {version.onnx_path}: {exc}") from exc
        self.version = version
        self.spec = read_spec(self.session, version.card)
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        self.providers: list[str] = self.session.get_providers()
        check_providers(self.key, providers, self.providers, strict_providers)

    @property
    def key(self) -> str:
        """``name:version`` of the loaded model."""
        return f"{self.version.name}:{self.version.version}"

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run a preprocessed batch ``[N,3,S,S]`` → raw output ``[N,A,5+C]``."""
        out = self.session.run([self.output_name], {self.input_name: batch})[0]
        return np.asarray(out)

    def warmup(self, runs: int, max_batch: int) -> float:
        """Run ``runs`` inferences at batch 1 and ``max_batch``; returns seconds spent."""
        t0 = time.perf_counter()
        s = self.spec.imgsz
        rng = np.random.default_rng(0)
        for n in sorted({1, max_batch}):
            x = rng.random((n, 3, s, s), dtype=np.float32)
            for _ in range(runs):
                self.run(x)
        spent = time.perf_counter() - t0
        log.info("warmed %s on %s in %.2fs", self.key, self.providers[0], spent)
        return spent
