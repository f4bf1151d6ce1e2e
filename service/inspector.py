"""The in-process frame backend: decode off the loop, batch, post-process, record.

Used directly by the single-node service and by the Redis inference workers, so both
paths run exactly the same code.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np

from models.processing import (
    ImageDecodeError,
    ImageTooLargeError,
    LetterboxInfo,
    RawLayout,
    decode_scaled,
    letterbox,
    raw_pixels,
    verdict,
)
from service.batcher import BatchItem
from service.errors import (
    DeadlineExceeded,
    InvalidImage,
    InvalidInput,
    NotReady,
    PayloadTooLarge,
)
from service.frames import Frame
from service.manager import ModelManager
from service.metrics import Metrics
from service.records import DetectionRecord, ModelInfo, Timing, detections_to_list

# Raw frames up to this many pixels (a 640x480 Mono8 VGA frame) are letterboxed on
# the event loop; larger ones and every encoded image go to the decode threads.
INLINE_RAW_PIXELS = 640 * 480


@lru_cache(maxsize=64)
def fail_class_ids(
    class_names: tuple[str, ...], fail_classes: tuple[str, ...] | None
) -> frozenset[int] | None:
    """Ids of the classes that fail a part (None = every class); cached per model."""
    if fail_classes is None:
        return None
    return frozenset(i for i, n in enumerate(class_names) if n in fail_classes)


def prepare(
    data: bytes, size: int, max_pixels: int, pixels: RawLayout | None = None
) -> tuple[np.ndarray, LetterboxInfo, tuple[int, int]]:
    """Decode and letterbox one image into an ``SxSx3`` uint8 model input (CPU-bound).

    The float conversion happens when the batch is assembled
    (:func:`models.processing.batch_inputs`). Large JPEG frames are decoded at a reduced
    scale (DCT scaling), never below the letterbox size; boxes still map to the original
    frame's pixels. With ``pixels``, ``data`` is a raw buffer of that layout (a ``mono8``
    frame gives an ``SxS`` input)."""
    try:
        if pixels is None:
            img, orig = decode_scaled(data, max_pixels, fit=size)
        else:
            img, orig = raw_pixels(data, pixels, max_pixels), (pixels.width, pixels.height)
    except ImageTooLargeError as exc:
        raise PayloadTooLarge(str(exc)) from exc
    except ImageDecodeError as exc:
        raise InvalidImage(str(exc)) from exc
    boxed, info = letterbox(img, size, orig_size=orig)
    return boxed, info, orig


def _as_input(tensor: np.ndarray, size: int) -> tuple[np.ndarray, LetterboxInfo, tuple[int, int]]:
    """Check a preprocessed ``[3,S,S]`` tensor; its "original image" is the input itself."""
    if tensor.shape != (3, size, size):
        raise InvalidInput(
            f"preprocessed tensor must be [3,{size},{size}], got {list(tensor.shape)}"
        )
    return tensor.astype(np.float32, copy=False), LetterboxInfo(1.0, 0.0, 0.0), (size, size)


class Inspector:
    """Inspect frames with the local models (implements ``FrameBackend``)."""

    def __init__(
        self, manager: ModelManager, metrics: Metrics, executor: ThreadPoolExecutor,
        max_pixels: int, fail_classes: list[str] | None = None,
    ) -> None:  # fmt: skip
        self.manager, self.metrics, self.executor = manager, metrics, executor
        self.max_pixels = max_pixels
        self.fail_classes = None if fail_classes is None else tuple(fail_classes)

    @property
    def ready(self) -> bool:
        """True once every configured model is warm."""
        return self.manager.ready

    async def inspect(self, frame: Frame) -> DetectionRecord:
        """Decode, batch, infer and build the detection record of one frame."""
        return await self._inspect(frame, None)

    async def inspect_tensor(self, frame: Frame, tensor: np.ndarray) -> DetectionRecord:
        """Like :meth:`inspect` for an already preprocessed ``[3,S,S]`` float32 tensor
        (letterboxed, RGB, 0..1; KServe's FP32 input). ``frame.data`` is ignored and the
        boxes are in model-input pixels."""
        return await self._inspect(frame, tensor)

    async def _inspect(self, frame: Frame, pre: np.ndarray | None) -> DetectionRecord:
        if not self.manager.ready:
            raise NotReady("models are still warming up")
        if frame.remaining() <= 0:
            self.metrics.dropped.labels("deadline").inc()
            raise DeadlineExceeded("frame arrived after its deadline")
        runner = await self.manager.acquire(frame.model_ref)
        key = (runner.version.name, runner.version.version)
        try:
            loop = asyncio.get_running_loop()
            spec = runner.session.spec
            px = frame.pixels
            if px is not None and px.width * px.height <= INLINE_RAW_PIXELS:
                # A small raw frame is one resize (~25 us): cheaper here than the
                # executor round trip it would need (~75 us of thread hand-offs).
                tensor, info, size = prepare(frame.data, spec.imgsz, self.max_pixels, px)
            elif pre is None:
                tensor, info, size = await loop.run_in_executor(
                    self.executor, prepare, frame.data, spec.imgsz, self.max_pixels, px
                )
            else:
                tensor, info, size = _as_input(pre, spec.imgsz)
            remaining = frame.remaining()
            waiter = loop.create_future()  # woken once per batch (batcher.wake)
            item = BatchItem(tensor, info, size, time.monotonic() + remaining, waiter=waiter)
            future = runner.batcher.submit(item)
            try:
                async with asyncio.timeout(max(remaining, 0.0)):  # lighter than wait_for
                    await waiter
            except TimeoutError:
                future.cancel()  # never run it if it is still queued
                self.metrics.dropped.labels("deadline").inc()
                raise DeadlineExceeded(
                    f"no result within the deadline ({remaining * 1000:.0f} ms)"
                ) from None
            dets = future.result()  # settled before its waiter was woken
        except Exception:
            self.metrics.model_stats.failure(key, time.perf_counter() - frame.received)
            raise
        finally:
            self.manager.release(runner)
        v = runner.version
        record = DetectionRecord(
            image=frame.image_name, frame_id=frame.frame_id, line=frame.line, camera=frame.camera,
            model=ModelInfo(name=v.name, version=v.version, role=v.role),
            verdict=verdict(dets, fail_class_ids(spec.class_names, self.fail_classes)),
            detections=detections_to_list(dets, spec.class_names),
            timing_ms=Timing(
                queue=round(item.queue_wait * 1000, 3),
                inference=round(item.inference_time * 1000, 3),
                total=round((time.perf_counter() - frame.received) * 1000, 3),
            ),
        )  # fmt: skip
        self.metrics.observe_frame(
            frame.line, frame.camera, v.name, v.version, record.verdict,
            (d.label for d in record.detections),
        )  # fmt: skip
        self.metrics.model_stats.success(
            key, record.timing_ms.total / 1000, item.queue_wait, item.inference_time,
            item.input_time, item.output_time,
        )  # fmt: skip
        return record
