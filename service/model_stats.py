"""Cumulative per-model-version inference statistics in the KServe v2 / Triton shape.

``GET /v2/models/{name}/stats`` and the gRPC ``ModelStatistics`` call answer from one
:class:`ModelStats`, so ``perf_analyzer`` can split its latency into queue and compute and
``tritonclient``'s ``get_inference_statistics`` works. Prometheus (``/metrics``) remains the
source for dashboards; these counters are the same measurements, cumulative since start.

What each field holds here:

* ``success`` / ``fail``: frames answered / failed after their model was chosen, with the
  service's end-to-end time for each (decode, queue, model, post-processing).
* ``queue``: time a frame waited for its batch (the in-process batcher; with
  ``queue=redis`` also its time in the Redis stream, as the worker reports it).
* ``compute_input`` / ``compute_infer`` / ``compute_output``: the batch's assembly into
  one tensor, ONNX Runtime's run, and post-processing (decode, NMS), charged in full to
  every frame of the batch as Triton does. With ``queue=redis`` the API only learns the
  model time (``compute_infer``) from each record; the worker processes run the batches.
* ``execution_count`` and ``batch_stats``: one per model run (local models only).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

Key = tuple[str, int]  # (model name, version)


@dataclass
class Duration:
    """A count and its cumulative nanoseconds."""

    count: int = 0
    ns: int = 0

    def add(self, seconds: float, n: int = 1) -> None:
        self.count += n
        self.ns += max(0, round(seconds * 1e9))

    def as_dict(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


PARTS = ("compute_input", "compute_infer", "compute_output")


@dataclass
class _Version:
    last_inference_ms: int = 0
    inference_count: int = 0
    execution_count: int = 0
    stats: dict[str, Duration] = field(
        default_factory=lambda: {
            k: Duration() for k in ("success", "fail", "queue", *PARTS, "cache_hit", "cache_miss")
        }
    )
    batches: dict[int, dict[str, Duration]] = field(
        default_factory=lambda: defaultdict(lambda: {k: Duration() for k in PARTS})
    )


class ModelStats:
    """Thread-safe accumulator: inference threads add executions, the event loop adds
    answered and failed frames."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._versions: dict[Key, _Version] = defaultdict(_Version)

    def success(
        self,
        key: Key,
        total_s: float,
        queue_s: float,
        infer_s: float,
        input_s: float | None = None,
        output_s: float | None = None,
    ) -> None:
        """One frame answered (``input_s``/``output_s`` None: not measured here)."""
        with self._lock:
            v = self._versions[key]
            v.inference_count += 1
            v.last_inference_ms = int(time.time() * 1000)
            v.stats["success"].add(total_s)
            v.stats["queue"].add(queue_s)
            v.stats["compute_infer"].add(infer_s)
            if input_s is not None:
                v.stats["compute_input"].add(input_s)
            if output_s is not None:
                v.stats["compute_output"].add(output_s)

    def failure(self, key: Key, total_s: float) -> None:
        """One frame that failed after its model version was chosen."""
        with self._lock:
            self._versions[key].stats["fail"].add(total_s)

    def execution(
        self, key: Key, batch_size: int, input_s: float, infer_s: float, output_s: float
    ) -> None:
        """One model run over ``batch_size`` frames."""
        with self._lock:
            v = self._versions[key]
            v.execution_count += 1
            for part, s in zip(PARTS, (input_s, infer_s, output_s), strict=True):
                v.batches[batch_size][part].add(s)

    def snapshot(self, versions: list[Key]) -> list[dict[str, Any]]:
        """``model_stats`` entries (v2 JSON shape) for ``versions``, zeros where unused."""
        out = []
        with self._lock:
            for name, version in versions:
                v = self._versions.get((name, version), _Version())
                out.append(
                    {
                        "name": name,
                        "version": str(version),
                        "last_inference": v.last_inference_ms,
                        "inference_count": v.inference_count,
                        "execution_count": v.execution_count,
                        "inference_stats": {k: d.as_dict() for k, d in v.stats.items()},
                        "batch_stats": [
                            {"batch_size": size, **{k: d.as_dict() for k, d in parts.items()}}
                            for size, parts in sorted(v.batches.items())
                        ],
                    }
                )
        return out
