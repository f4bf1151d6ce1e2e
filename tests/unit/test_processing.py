"""The shared numpy pre/post-processing."""

from __future__ import annotations

import numpy as np
import pytest

from models.processing import (
    Detections,
    ImageDecodeError,
    ImageTooLargeError,
    ModelSpec,
    batched_nms,
    box_iou,
    decode_image,
    decode_predictions,
    letterbox,
    nms,
    postprocess,
    preprocess_batch,
    unletterbox_boxes,
    verdict,
)
from models.processing.letterbox import letterbox_boxes
from tests.conftest import encode


def test_letterbox_centres_and_inverts_boxes() -> None:
    img = np.zeros((100, 200, 3), np.uint8)
    out, info = letterbox(img, 64)
    assert out.shape == (64, 64, 3)
    assert info.scale == pytest.approx(0.32)
    assert info.pad_x == 0 and info.pad_y == 16
    assert (out[:16] == 114).all() and (out[-16:] == 114).all()
    boxes = np.array([[10.0, 20.0, 150.0, 90.0]], np.float32)
    back = unletterbox_boxes(letterbox_boxes(boxes, info), info, 200, 100)
    np.testing.assert_allclose(back, boxes, atol=1e-4)


def test_unletterbox_clips_to_image() -> None:
    _, info = letterbox(np.zeros((50, 50, 3), np.uint8), 100)
    out = unletterbox_boxes(np.array([[-10.0, -10.0, 120.0, 120.0]]), info, 50, 50)
    np.testing.assert_allclose(out, [[0, 0, 50, 50]])


def test_preprocess_batch_layout() -> None:
    imgs = [np.full((30, 40, 3), 255, np.uint8), np.zeros((64, 64, 3), np.uint8)]
    batch, infos = preprocess_batch(imgs, 32)
    assert batch.shape == (2, 3, 32, 32) and batch.dtype == np.float32
    assert batch[0].max() == pytest.approx(1.0) and batch[1].max() == 0.0
    assert len(infos) == 2


def test_box_iou_and_nms() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    iou = box_iou(a, a)
    assert iou[0, 1] == pytest.approx(1.0) and iou[0, 2] == 0.0
    keep = nms(a, np.array([0.9, 0.8, 0.7], np.float32), 0.5)
    assert keep.tolist() == [0, 2]
    # different classes never suppress each other
    keep = batched_nms(a, np.array([0.9, 0.8, 0.7], np.float32), np.array([0, 1, 0]), 0.5)
    assert sorted(keep.tolist()) == [0, 1, 2]


def test_spec_round_trip_and_validation() -> None:
    spec = ModelSpec(("a", "b"), 64, (8, 16), "anchor_based", (((10, 12),), ((30, 40),)))
    assert ModelSpec.from_json(spec.to_json()) == spec
    assert spec.num_predictions == 64 + 16
    with pytest.raises(ValueError):
        ModelSpec(("a",), 60, (8,))
    with pytest.raises(ValueError):
        ModelSpec(("a",), 64, (8, 16), "anchor_based", (((1.0, 1.0),),))


def _raw_with_one_box(spec: ModelSpec, row: int, cls: int, logit: float = 6.0) -> np.ndarray:
    raw = np.full((1, spec.num_predictions, 5 + spec.num_classes), -10.0, np.float32)
    raw[0, :, :4] = 0.0
    raw[0, row, 4] = logit
    raw[0, row, 5 + cls] = logit
    return raw


def test_decode_anchor_free_matches_contract() -> None:
    spec = ModelSpec(("a", "b"), 32, (8,))
    raw = np.zeros((1, 16, 7), np.float32)
    raw[0, 5, :4] = [0.5, 0.5, np.log(2.0), 0.0]  # row 5 = cell (x=1, y=1)
    boxes, scores = decode_predictions(raw, spec)
    np.testing.assert_allclose(boxes[0, 5], [12 - 8, 12 - 4, 12 + 8, 12 + 4])
    assert scores.shape == (1, 16, 2)
    np.testing.assert_allclose(scores[0, 0], [0.25, 0.25])


def test_decode_anchor_based_matches_contract() -> None:
    spec = ModelSpec(("a",), 32, (16,), "anchor_based", (((10.0, 20.0), (30.0, 30.0)),))
    raw = np.zeros((1, spec.num_predictions, 6), np.float32)
    boxes, _ = decode_predictions(raw, spec)
    # sigmoid(0)=.5 → centre (0.5 + g) * s, size (2*.5)^2 * anchor; row 4 = anchor 1, cell 0
    np.testing.assert_allclose(boxes[0, 0], [8 - 5, 8 - 10, 8 + 5, 8 + 10])
    np.testing.assert_allclose(boxes[0, 4], [8 - 15, 8 - 15, 8 + 15, 8 + 15])


def test_postprocess_keeps_confident_box_in_original_pixels() -> None:
    spec = ModelSpec(("a", "b"), 32, (8,))
    raw = _raw_with_one_box(spec, row=9, cls=1)  # cell x=1, y=2 → input box 4,12,12,20
    img = np.zeros((16, 64, 3), np.uint8)  # scale 0.5, pad_y 12
    _, info = letterbox(img, 32)
    (dets,) = postprocess(raw, spec, [info], [(64, 16)], conf_thr=0.5)
    assert len(dets) == 1 and dets.class_ids.tolist() == [1]
    np.testing.assert_allclose(dets.boxes[0], [8, 0, 24, 16], atol=1e-4)
    # per-class threshold above the score drops it
    (none,) = postprocess(raw, spec, [info], [(64, 16)], conf_thr=[0.5, 0.999])
    assert len(none) == 0


def test_postprocess_rejects_wrong_shape() -> None:
    spec = ModelSpec(("a",), 32, (8,))
    with pytest.raises(ValueError, match="does not match"):
        postprocess(np.zeros((1, 3, 6), np.float32), spec, [], [])


def test_verdict() -> None:
    empty = Detections.empty()
    one = Detections(np.zeros((1, 4), np.float32), np.ones(1, np.float32), np.array([2]))
    assert verdict(empty) == "pass"
    assert verdict(one) == "fail"
    assert verdict(one, {0, 1}) == "pass"
    assert verdict(one, {2}) == "fail"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "BMP", "TIFF"])
def test_decode_image_formats(fmt: str) -> None:
    img = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    out = decode_image(encode(img, fmt))
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8


def test_decode_image_errors() -> None:
    with pytest.raises(ImageDecodeError, match="empty"):
        decode_image(b"")
    with pytest.raises(ImageDecodeError):
        decode_image(b"not an image at all")
    data = encode(np.zeros((50, 50, 3), np.uint8), "PNG")
    with pytest.raises(ImageDecodeError):
        decode_image(data[: len(data) // 2])
    with pytest.raises(ImageTooLargeError, match="over the limit"):
        decode_image(data, max_pixels=100)


def test_nms_stops_at_max_keep_and_candidates_are_bounded() -> None:
    rng = np.random.default_rng(0)
    xy = rng.random((500, 2), dtype=np.float32) * 1000
    boxes = np.concatenate([xy, xy + 5], axis=1)  # 500 disjoint boxes
    scores = rng.random(500, dtype=np.float32)
    keep = nms(boxes, scores, 0.5, max_keep=10)
    assert keep.tolist() == np.argsort(-scores)[:10].tolist()
    spec = ModelSpec(("a",), 256, (4,))  # 4096 rows, every one confident
    raw = np.zeros((1, spec.num_predictions, 6), np.float32)
    raw[0, :, 4:] = 8.0
    raw[0, :, 4] += rng.random(spec.num_predictions, dtype=np.float32)
    _, info = letterbox(np.zeros((256, 256, 3), np.uint8), 256)
    (dets,) = postprocess(raw, spec, [info], [(256, 256)], conf_thr=0.5, max_det=50)
    assert len(dets) == 50
