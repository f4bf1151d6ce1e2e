"""Dynamic batcher: batching, bounds, deadlines, cancellation, drain on close."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import wait
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from models.processing import LetterboxInfo, ModelSpec, PostprocessConfig
from service.batcher import Batcher, BatchItem
from service.errors import DeadlineExceeded, NotReady, QueueFull
from service.metrics import Metrics

SPEC = ModelSpec(("a",), 16, (8,))


class GatedSession:
    """A model stand-in whose run() blocks until the test opens the gate."""

    spec = SPEC
    key = "gated:1"
    version = SimpleNamespace(name="gated", version=1)

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.started = threading.Event()
        self.batches: list[int] = []

    def run(self, x: np.ndarray) -> np.ndarray:
        self.started.set()
        self.gate.wait(10)
        self.batches.append(x.shape[0])
        return np.full((x.shape[0], SPEC.num_predictions, 6), -10.0, np.float32)


def item(deadline_s: float = 10.0) -> BatchItem:
    return BatchItem(
        np.zeros((3, 16, 16), np.float32),
        LetterboxInfo(1.0, 0, 0),
        (16, 16),
        deadline=time.monotonic() + deadline_s,
    )


def make(session: GatedSession, **kw: object) -> Batcher:
    post = PostprocessConfig(conf_thr=0.5, iou_thr=0.5, max_det=10)
    return Batcher(session, post, Metrics(), **kw)  # type: ignore[arg-type]


def test_frames_queued_while_busy_share_a_batch() -> None:
    s = GatedSession()
    b = make(s, max_batch=8, max_delay_s=0.0)
    first = b.submit(item())
    assert s.started.wait(5)  # the first frame is running alone; the next 7 queue up
    rest = [b.submit(item()) for _ in range(7)]
    s.gate.set()
    wait([first, *rest], timeout=10)
    assert s.batches == [1, 7]
    assert all(len(f.result()) == 0 for f in rest)
    b.close()


def test_queue_bound_expired_and_cancelled_frames() -> None:
    s = GatedSession()
    b = make(s, max_batch=1, max_delay_s=0.0, queue_size=3)
    running = b.submit(item())
    assert s.started.wait(5)
    expired = b.submit(item(deadline_s=-1))
    cancelled = b.submit(item())
    ok = b.submit(item())
    with pytest.raises(QueueFull):
        b.submit(item())
    assert cancelled.cancel()
    s.gate.set()
    assert len(ok.result(10)) == 0 and len(running.result(10)) == 0
    with pytest.raises(DeadlineExceeded):
        expired.result(10)
    assert s.batches == [1, 1]  # neither the expired nor the cancelled frame ran
    b.close()


def test_close_drains_queue_then_refuses() -> None:
    s = GatedSession()
    b = make(s, max_batch=2, max_delay_s=0.0)
    futures = [b.submit(item()) for _ in range(5)]
    s.gate.set()
    b.close(timeout=10)
    assert all(f.done() and not f.exception() for f in futures)
    with pytest.raises(NotReady):
        b.submit(item())


def test_score_threshold_precedence() -> None:
    names = ("crack", "dent")
    card = {"recommended_score_threshold": 0.4}
    cfg = PostprocessConfig.for_classes(names, None, {}, 0.5, 10, card=card)
    assert np.asarray(cfg.conf_thr).tolist() == pytest.approx([0.4, 0.4])  # the card's
    cfg = PostprocessConfig.for_classes(names, None, {"dent": 0.7}, 0.5, 10, card={})
    assert np.asarray(cfg.conf_thr).tolist() == pytest.approx([0.25, 0.7])  # fallback
    cfg = PostprocessConfig.for_classes(names, 0.3, {}, 0.5, 10, card=card)
    assert np.asarray(cfg.conf_thr).tolist() == pytest.approx([0.3, 0.3])  # configured wins


def test_card_class_thresholds_apply_under_the_settings() -> None:
    names = ("crack", "dent")
    card = {"recommended_score_threshold": 0.4, "class_thresholds": {"crack": 0.12}}
    cfg = PostprocessConfig.for_classes(names, None, {}, 0.5, 10, card=card)
    assert np.asarray(cfg.conf_thr).tolist() == pytest.approx([0.12, 0.4])  # card per class
    cfg = PostprocessConfig.for_classes(names, None, {"crack": 0.6}, 0.5, 10, card=card)
    assert np.asarray(cfg.conf_thr).tolist() == pytest.approx([0.6, 0.4])  # setting wins
    cfg = PostprocessConfig.for_classes(names, 0.3, {}, 0.5, 10, card=card)
    assert np.asarray(cfg.conf_thr).tolist() == pytest.approx([0.3, 0.3])  # global setting


class FailingSession(GatedSession):
    def run(self, x: np.ndarray) -> np.ndarray:
        super().run(x)
        raise RuntimeError("model exploded")


@pytest.mark.parametrize("session_cls", [GatedSession, FailingSession])
def test_asyncio_callers_are_woken_once_per_batch(session_cls: type[GatedSession]) -> None:
    """A batch of frames from one event loop costs that loop one thread-safe wake-up
    (not one per frame), and every waiter wakes with its future already settled, also
    when the model fails."""
    loop = asyncio.new_event_loop()
    wakeups = 0
    original = loop.call_soon_threadsafe

    def counting(*args: Any, **kw: Any) -> Any:
        nonlocal wakeups
        wakeups += 1
        return original(*args, **kw)

    loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
    s = session_cls()
    b = make(s, max_batch=8, max_delay_s=0.0)

    async def scenario() -> list[BatchItem]:
        first = item()
        first.waiter = loop.create_future()
        b.submit(first)
        assert await loop.run_in_executor(None, s.started.wait, 5)
        rest = [item() for _ in range(7)]
        for it in rest:
            it.waiter = loop.create_future()
            b.submit(it)
        s.gate.set()
        for it in [first, *rest]:
            await asyncio.wait_for(it.waiter, 10)  # type: ignore[arg-type]
            assert it.future.done()
        return [first, *rest]

    try:
        items = loop.run_until_complete(scenario())
    finally:
        b.close()
        loop.close()
    assert s.batches == [1, 7]
    assert wakeups == 2 + 1  # one per batch, plus run_in_executor's own hand-back
    if session_cls is FailingSession:
        assert all(isinstance(it.future.exception(), RuntimeError) for it in items)
    else:
        assert all(len(it.future.result()) == 0 for it in items)
