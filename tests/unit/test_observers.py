"""The after-answer observer mechanism: order, isolation, refusal, tensor passthrough."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import numpy as np
import pytest

from service.errors import Unavailable
from service.frames import Frame
from service.observers import ObservedBackend, ObservedTensorBackend, observe
from service.records import DetectionRecord, ModelInfo, Timing


def _record(frame: Frame) -> DetectionRecord:
    return DetectionRecord(
        frame_id=frame.frame_id,
        model=ModelInfo(name="m", version=1, role="student"),
        verdict="pass",
        detections=[],
        timing_ms=Timing(queue=0, inference=0, total=0),
    )


class _Plain:
    ready = True

    async def inspect(self, frame: Frame) -> DetectionRecord:
        return _record(frame)


class _Tensors(_Plain):
    async def inspect_tensor(self, frame: Frame, tensor: np.ndarray) -> DetectionRecord:
        return _record(frame)


class _Seen:
    def __init__(self, fail: BaseException | None = None) -> None:
        self.seen: list[str] = []
        self.fail = fail

    def observe(self, frame: Frame, record: DetectionRecord) -> None:
        self.seen.append(record.frame_id)
        if self.fail is not None:
            raise self.fail


def _frame(fid: str) -> Frame:
    return Frame(data=b"x", deadline=time.time() + 5, frame_id=fid)


def test_every_observer_sees_the_frame_and_a_broken_one_changes_nothing() -> None:
    ctx = SimpleNamespace(backend=_Plain())
    broken, after = _Seen(RuntimeError("boom")), _Seen()
    observe(ctx, broken)
    observe(ctx, after)
    assert isinstance(ctx.backend, ObservedBackend)
    assert len(ctx.backend.observers) == 2  # wrapped once
    record = asyncio.run(ctx.backend.inspect(_frame("f1")))
    assert record.verdict == "pass"
    assert broken.seen == after.seen == ["f1"]


def test_a_required_observer_refuses_the_answer() -> None:
    ctx = SimpleNamespace(backend=_Plain())
    observe(ctx, _Seen(Unavailable("audit queue full")))
    with pytest.raises(Unavailable):
        asyncio.run(ctx.backend.inspect(_frame("f2")))


def test_tensor_inspection_is_observed_only_where_the_backend_takes_tensors() -> None:
    plain = SimpleNamespace(backend=_Plain())
    observe(plain, _Seen())
    assert not hasattr(plain.backend, "inspect_tensor")
    tensors = SimpleNamespace(backend=_Tensors())
    seen = _Seen()
    observe(tensors, seen)
    assert isinstance(tensors.backend, ObservedTensorBackend)
    asyncio.run(tensors.backend.inspect_tensor(_frame("f3"), np.zeros((3, 4, 4), np.float32)))
    assert seen.seen == ["f3"]


class _Failing(_Tensors):
    async def inspect(self, frame: Frame) -> DetectionRecord:
        raise RuntimeError("inference failed")

    async def inspect_tensor(self, frame: Frame, tensor: np.ndarray) -> DetectionRecord:
        raise RuntimeError("inference failed")


class _Errors(_Seen):
    def __init__(self, broken: bool = False) -> None:
        super().__init__()
        self.errors: list[tuple[str, str]] = []
        self.broken = broken

    def observe_error(self, frame: Frame, exc: BaseException) -> None:
        self.errors.append((frame.frame_id, str(exc)))
        if self.broken:
            raise ValueError("observer bug")


def test_observers_with_an_error_hook_see_failed_frames_and_the_error_goes_out() -> None:
    ctx = SimpleNamespace(backend=_Failing())
    plain, broken, hooked = _Seen(), _Errors(broken=True), _Errors()
    for observer in (plain, broken, hooked):
        observe(ctx, observer)
    with pytest.raises(RuntimeError, match="inference failed"):
        asyncio.run(ctx.backend.inspect(_frame("e1")))
    with pytest.raises(RuntimeError, match="inference failed"):
        asyncio.run(ctx.backend.inspect_tensor(_frame("e2"), np.zeros((3, 4, 4), np.float32)))
    assert plain.seen == [] and hooked.seen == []
    assert (
        broken.errors == hooked.errors == [("e1", "inference failed"), ("e2", "inference failed")]
    )
