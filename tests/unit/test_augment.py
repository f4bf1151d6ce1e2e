"""Augmentation box consistency and determinism; dataset, collate and loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models.data import (
    AugmentConfig,
    DetectionDataset,
    Sample,
    augment_items,
    build_loader,
    collate,
)
from models.data.augment import keep_boxes
from models.processing import preprocess_batch

NO_DROP = AugmentConfig(min_size=0.0, min_area_frac=0.0)


def bright_item(seed: int, w: int = 120, h: int = 90) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dark grey image with 2 bright rectangles exactly at integer boxes."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 20, np.uint8)
    boxes = []
    for _ in range(2):
        x1, y1 = int(rng.integers(0, w - 30)), int(rng.integers(0, h - 30))
        x2, y2 = x1 + int(rng.integers(12, 30)), y1 + int(rng.integers(12, 30))
        img[y1:y2, x1:x2] = 250
        boxes.append([x1, y1, x2, y2])
    return img, np.array(boxes, np.float32), np.array([0, 1], np.int64)


def check_boxes_cover_bright(img: np.ndarray, boxes: np.ndarray) -> None:
    bright = img[..., 0] > 140
    covered = np.zeros_like(bright)
    for x1, y1, x2, y2 in boxes:
        # interior (2 px margin for interpolation) is bright
        inner = bright[int(np.ceil(y1)) + 2 : int(y2) - 2, int(np.ceil(x1)) + 2 : int(x2) - 2]
        if inner.size:
            assert inner.mean() > 0.95
        covered[
            max(int(y1) - 1, 0) : int(np.ceil(y2)) + 1, max(int(x1) - 1, 0) : int(np.ceil(x2)) + 1
        ] = True
    assert not (bright & ~covered).any(), "bright pixels outside every box"


@pytest.mark.parametrize("mosaic", [False, True])
def test_augment_boxes_follow_pixels(mosaic: bool) -> None:
    for seed in range(12):
        items = [bright_item(seed * 4 + j) for j in range(4 if mosaic else 1)]
        img, boxes, labels, _ = augment_items(items, 96, np.random.default_rng(seed), NO_DROP)
        assert img.shape == (96, 96, 3) and img.dtype == np.uint8
        assert boxes.dtype == np.float32 and labels.dtype == np.int64 and len(boxes) == len(labels)
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 96).all()
        check_boxes_cover_bright(img, boxes)


def test_augment_is_deterministic_and_grey_equals_rgb() -> None:
    items = [bright_item(j) for j in range(4)]
    a = augment_items(items, 64, np.random.default_rng(3))
    b = augment_items(items, 64, np.random.default_rng(3))
    c = augment_items(items, 64, np.random.default_rng(4))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    grey = [(im[..., 0].copy(), bx, lb) for im, bx, lb in items]
    g = augment_items(grey, 64, np.random.default_rng(3))
    np.testing.assert_array_equal(a[0], g[0])
    np.testing.assert_array_equal(a[1], g[1])


def test_identity_config_is_plain_letterbox() -> None:
    img, boxes, labels = bright_item(0)
    cfg = AugmentConfig(flip_lr=0, flip_ud=0, scale=0, translate=0, brightness=0, contrast=0)
    out, oboxes, _, info = augment_items([(img, boxes, labels)], 64, np.random.default_rng(0), cfg)
    expected, _ = preprocess_batch([img], 64)
    np.testing.assert_allclose(out.transpose(2, 0, 1) / 255.0, expected[0], atol=1.5 / 255)
    np.testing.assert_allclose(oboxes, boxes * info.scale + [info.pad_x, info.pad_y] * 2, atol=1e-4)


def test_keep_boxes_drops_tiny_and_mostly_cut() -> None:
    boxes = np.array([[0, 0, 10, 10], [0, 0, 1.5, 10], [0, 0, 10, 1], [0, 0, 3, 10]], np.float32)
    area0 = np.array([100, 15, 10, 100], np.float32)  # last one kept only 30 of 100 px²
    np.testing.assert_array_equal(keep_boxes(boxes, area0, 2.0, 0.2), [True, False, False, True])
    np.testing.assert_array_equal(keep_boxes(boxes, area0, 2.0, 0.5), [True, False, False, False])


def make_dataset(tmp: Path, n: int = 5) -> list[Sample]:
    out = []
    for i in range(n):
        img, boxes, labels = bright_item(i, w=80 + 10 * i, h=60)
        path = tmp / f"b_{i}.png"
        Image.fromarray(img).save(path)
        out.append(Sample(path, img.shape[1], img.shape[0], boxes, labels))
    return out


def test_eval_dataset_and_collate_match_serving_preprocessing(tmp_path: Path) -> None:
    samples = make_dataset(tmp_path)
    ds = DetectionDataset(samples, 64, augment=False)
    images, targets, metas = collate([ds[i] for i in range(3)])
    assert images.shape == (3, 3, 64, 64) and images.dtype == torch.float32
    raw = [np.asarray(Image.open(s.image_path).convert("RGB")) for s in samples[:3]]
    expected, infos = preprocess_batch(raw, 64)
    assert torch.equal(images, torch.from_numpy(expected))
    assert targets.shape == (6, 6) and targets.dtype == torch.float32
    assert targets[:, 0].tolist() == [0, 0, 1, 1, 2, 2]
    assert [m.info for m in metas] == infos
    assert metas[1].orig_size == (90, 60) and metas[1].index == 1
    s = samples[1]
    np.testing.assert_allclose(
        targets[2:4, 2:].numpy(), s.boxes * infos[1].scale + [infos[1].pad_x, infos[1].pad_y] * 2
    )


def test_train_loader_shapes_epochs_and_close_mosaic(tmp_path: Path) -> None:
    ds = DetectionDataset(make_dataset(tmp_path), 64, augment=True, close_mosaic=2)
    loader = build_loader(ds, batch_size=2, shuffle=True, workers=0, seed=0)
    batches = list(loader)
    assert [b[0].shape[0] for b in batches] == [2, 2, 1]
    assert all(b[1].shape[1] == 6 and b[0].dtype == torch.float32 for b in batches)
    first = torch.cat([b[0] for b in batches])
    again = torch.cat([b[0] for b in build_loader(ds, 2, True, 0, 0)])
    assert torch.equal(first, again)  # same epoch, same seed: same data
    ds.set_epoch(1, total_epochs=10)
    assert ds.mosaic_enabled and not torch.equal(first, torch.cat([b[0] for b in loader]))
    ds.set_epoch(8, total_epochs=10)
    assert not ds.mosaic_enabled
    img, targets, _ = ds[0]
    assert img.shape == (64, 64, 3) and targets.shape[1] == 5
