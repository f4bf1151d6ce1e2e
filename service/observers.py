"""After the answer: the one place every answered frame is shown to the loop's observers.

Capture, shadow serving, the audit trail and the rollback monitor each see every frame
that was answered, on every edge (REST, gRPC, KServe, in-process or Redis), through an
:class:`ObservedBackend` that wraps ``ctx.backend`` once. Observers are called after the
record exists and must return at once (queue the work, drop and count when full). An
observer may refuse an answer only by raising a :class:`service.errors.LineInspectError`
(``audit: required`` does, with a 503); any other exception is logged and the answer
goes out unchanged.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import numpy as np

from service.errors import LineInspectError
from service.frames import Frame
from service.records import DetectionRecord

log = logging.getLogger(__name__)


class FrameObserver(Protocol):
    """Sees an answered frame and its record; must not block. An observer may also
    define ``observe_error(frame, exc) -> None``: it then sees every frame whose
    inspection raised (the exception still goes to the caller unchanged)."""

    def observe(self, frame: Frame, record: DetectionRecord) -> None: ...


class ObservedBackend:
    """A frame backend that shows every answered frame to its observers, in order;
    every other attribute (``ready``, ``__aenter__`` …) is the wrapped backend's."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.observers: list[FrameObserver] = []

    @property
    def ready(self) -> bool:
        return bool(self.inner.ready)

    def _show(self, frame: Frame, record: DetectionRecord) -> None:
        for observer in self.observers:
            try:
                observer.observe(frame, record)
            except LineInspectError:
                raise
            except Exception:
                log.exception("%s failed (the answer was not affected)", type(observer).__name__)

    def _show_error(self, frame: Frame, exc: Exception) -> None:
        for observer in self.observers:
            hook = getattr(observer, "observe_error", None)
            if hook is None:
                continue
            try:
                hook(frame, exc)
            except Exception:
                log.exception(
                    "%s failed on a failed frame (its error went out unchanged)",
                    type(observer).__name__,
                )

    async def inspect(self, frame: Frame) -> DetectionRecord:
        try:
            record: DetectionRecord = await self.inner.inspect(frame)
        except Exception as exc:
            self._show_error(frame, exc)
            raise
        self._show(frame, record)
        return record

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class ObservedTensorBackend(ObservedBackend):
    """The same, for a backend that also takes preprocessed tensors (KServe FP32)."""

    async def inspect_tensor(self, frame: Frame, tensor: np.ndarray) -> DetectionRecord:
        try:
            record: DetectionRecord = await self.inner.inspect_tensor(frame, tensor)
        except Exception as exc:
            self._show_error(frame, exc)
            raise
        self._show(frame, record)
        return record


def observe(ctx: Any, observer: FrameObserver) -> None:
    """Add ``observer`` to ``ctx.backend``, wrapping the backend the first time."""
    if not isinstance(ctx.backend, ObservedBackend):
        tensors = hasattr(ctx.backend, "inspect_tensor")
        ctx.backend = (ObservedTensorBackend if tensors else ObservedBackend)(ctx.backend)
    ctx.backend.observers.append(observer)
