"""YOLO / VOC / COCO readers and writers, DATA.yaml, stratified split, fingerprint."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from models.data import Sample, fingerprint, load_data_config, load_splits, stratified_split
from models.data.formats import read_coco, read_voc, read_yolo, write_coco, write_voc, write_yolo

NAMES = ["crazing", "inclusion", "patches"]


def make_samples(tmp: Path, n: int = 6, seed: int = 0) -> list[Sample]:
    """Small PNG images (varied sizes) with random float boxes, some images without boxes."""
    rng = np.random.default_rng(seed)
    src = tmp / "src"
    src.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        w, h = int(rng.integers(40, 90)), int(rng.integers(30, 70))
        path = src / f"img_{i}.png"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
        k = 0 if i == n - 1 else int(rng.integers(1, 4))
        x1, y1 = rng.uniform(0, w / 2, k), rng.uniform(0, h / 2, k)
        x2, y2 = x1 + rng.uniform(2, w / 2, k), y1 + rng.uniform(2, h / 2, k)
        boxes = np.stack([x1, y1, x2, y2], 1).astype(np.float32)
        out.append(Sample(path, w, h, boxes, rng.integers(0, len(NAMES), k)))
    return out


def assert_same(a: list[Sample], b: list[Sample]) -> None:
    by_name = {s.image_path.name: s for s in b}
    assert len(a) == len(b) == len(by_name)
    for s in a:
        t = by_name[s.image_path.name]
        assert (t.width, t.height) == (s.width, s.height)
        assert t.image_path.is_file()
        np.testing.assert_array_equal(t.labels, s.labels)
        np.testing.assert_allclose(t.boxes, s.boxes, atol=1e-4, rtol=0)


def test_yolo_round_trip(tmp_path: Path) -> None:
    samples = make_samples(tmp_path)
    yaml_path = write_yolo(samples, tmp_path / "yolo", "train", NAMES)
    assert_same(samples, read_yolo(tmp_path / "yolo" / "images" / "train", num_classes=3))
    cfg = load_data_config(yaml_path)
    assert cfg.format == "yolo" and cfg.names == NAMES and cfg.val is None


def test_yolo_class_out_of_range(tmp_path: Path) -> None:
    write_yolo(make_samples(tmp_path), tmp_path / "yolo", "train", NAMES)
    with pytest.raises(ValueError, match="class id"):
        read_yolo(tmp_path / "yolo" / "images" / "train", num_classes=1)


def test_voc_round_trip(tmp_path: Path) -> None:
    samples = make_samples(tmp_path)
    write_voc(samples, tmp_path / "voc", NAMES)
    got, names = read_voc(tmp_path / "voc", NAMES)
    assert names == NAMES
    assert_same(samples, got)
    (tmp_path / "voc" / "set.txt").write_text("img_0\nimg_2\n")
    got, _ = read_voc(tmp_path / "voc", NAMES, image_set="set.txt")
    assert [s.image_path.name for s in got] == ["img_0.png", "img_2.png"]


def test_coco_round_trip(tmp_path: Path) -> None:
    samples = make_samples(tmp_path)
    write_coco(samples, NAMES, tmp_path / "coco" / "ann.json", tmp_path / "coco" / "imgs")
    got, names = read_coco(tmp_path / "coco" / "ann.json", tmp_path / "coco" / "imgs")
    assert names == NAMES
    assert_same(samples, got)


def test_fingerprint_is_layout_and_order_independent(tmp_path: Path) -> None:
    samples = make_samples(tmp_path)
    write_voc(samples, tmp_path / "voc", NAMES)
    voc, _ = read_voc(tmp_path / "voc", NAMES)
    fp = fingerprint(samples)
    assert len(fp) == 64 and fp == fingerprint(list(reversed(voc)))
    moved = [Sample(s.image_path, s.width, s.height, s.boxes + 1, s.labels) for s in samples]
    assert fingerprint(moved) != fp


def test_data_yaml_variants(tmp_path: Path) -> None:
    samples = make_samples(tmp_path)
    write_voc(samples[:4], tmp_path / "ds" / "voc_train", NAMES)
    write_voc(samples[4:], tmp_path / "ds" / "voc_val", NAMES)
    cfg_path = tmp_path / "cfg" / "data.yaml"
    cfg_path.parent.mkdir()
    raw = {"path": "../ds", "train": "voc_train", "val": "voc_val", "format": "voc"}
    cfg_path.write_text(yaml.safe_dump({**raw, "names": dict(enumerate(NAMES))}))
    train, val, names = load_splits(cfg_path)
    assert names == NAMES and len(train) == 4 and len(val) == 2
    cfg_path.write_text(yaml.safe_dump({**raw, "names": NAMES, "nc": 5}))
    with pytest.raises(ValueError, match="nc"):
        load_data_config(cfg_path)
    write_coco(samples, NAMES, tmp_path / "ds" / "ann" / "all.json", tmp_path / "ds" / "imgs")
    coco = {
        "path": "../ds",
        "format": "coco",
        "train": {"annotations": "ann/all.json", "images": "imgs"},
    }
    cfg_path.write_text(yaml.safe_dump(coco))
    train, val, names = load_splits(cfg_path, val_fraction=0.0)
    assert names == NAMES and len(train) == len(samples) and val == []


def _strat_samples(counts: dict[int, int]) -> list[Sample]:
    out = []
    for cls, n in counts.items():
        for i in range(n):
            box = np.array([[1, 1, 5, 5]], np.float32)
            out.append(Sample(Path(f"/d/c{cls}_{i}.jpg"), 10, 10, box, np.array([cls])))
    return out


def test_stratified_split_is_deterministic_and_proportional() -> None:
    samples = _strat_samples({0: 40, 1: 20, 2: 60, 3: 7})
    train, val = stratified_split(samples, 0.15, seed=0)
    per_class = {c: sum(s.majority_class == c for s in val) for c in range(4)}
    assert per_class == {0: 6, 1: 3, 2: 9, 3: 1}
    assert len(train) + len(val) == len(samples)
    assert {s.image_path for s in train}.isdisjoint(s.image_path for s in val)
    shuffled = samples[:]
    random.Random(1).shuffle(shuffled)
    _, val2 = stratified_split(shuffled, 0.15, seed=0)
    assert {s.image_path for s in val2} == {s.image_path for s in val}
    _, val3 = stratified_split(samples, 0.15, seed=1)
    assert {s.image_path for s in val3} != {s.image_path for s in val}


def test_majority_class() -> None:
    s = Sample(Path("x.jpg"), 10, 10, np.zeros((3, 4)), np.array([2, 1, 2]))
    assert s.majority_class == 2
    assert Sample(Path("y.jpg"), 10, 10).majority_class == -1
