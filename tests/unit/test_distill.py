"""Distillation (models/distill): GT masks, attention masks, every loss term, gradient
flow, a short distillation run on generated fixtures, teacher loading and the CLI."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from models.data import Sample
from models.detectors import Detector, build_detector, get_config
from models.distill import (
    DistillationLoss,
    DistillConfig,
    LevelDistiller,
    ResponseDistiller,
    attention_masks,
    bounded_regression_loss,
    box_cells,
    fg_bg_masks,
    masks_from_targets,
)
from models.distill.teacher import Teacher, load_teacher, resolve_teacher
from models.distill.trainer import DistillTrainer, neck_features
from models.losses import DetectionLoss
from models.train.checkpoint import load_checkpoint, save_checkpoint
from models.train.options import TrainOptions

CLASSES = ["bright", "dark"]
TEACHER_CFG = get_config("tiny", name="tiny-teacher", widths=(8, 16, 48, 48, 96))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _boxes(*rows: tuple[float, float, float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    b = torch.tensor([rows], dtype=torch.float32)
    return b, torch.ones(b.shape[:2], dtype=torch.bool)


# ------------------------------------------------------------------------------- masks
def test_nested_boxes_smallest_wins() -> None:
    big, small = (0.0, 0.0, 64.0, 64.0), (16.0, 16.0, 32.0, 32.0)
    for order in ((big, small), (small, big)):
        m = fg_bg_masks(*_boxes(*order), size=(8, 8), stride=8)
        assert torch.allclose(m.fg_scale[0, 2:4, 2:4], torch.full((2, 2), 1 / 4))
        outside = m.fg_scale[0].clone()
        outside[2:4, 2:4] = 0
        assert torch.allclose(outside[outside > 0], torch.tensor(1 / 64))
        assert m.fg.sum() == 64 and m.bg_scale.sum() == 0  # no background cell left


def test_scale_mask_normalisation() -> None:
    m = fg_bg_masks(*_boxes((0, 0, 16, 24), (40, 40, 64, 48)), size=(8, 8), stride=8)
    assert m.fg.sum() == 2 * 3 + 3 * 1
    assert torch.isclose(m.fg_scale.sum(), torch.tensor(2.0))  # one per (disjoint) box
    assert torch.isclose(m.bg_scale.sum(), torch.tensor(1.0))
    assert torch.allclose(m.bg_scale[m.bg > 0], torch.tensor(1 / (64 - 9)))
    assert torch.all((m.fg_scale > 0) != (m.bg_scale > 0))


def test_box_cells_and_targets() -> None:
    cells = box_cells(torch.tensor([[3.0, 3.0, 5.0, 5.0], [6.0, 6.0, 10.0, 10.0]]), 8, 4, 4)
    assert cells.tolist() == [[0, 0, 1, 1], [0, 0, 2, 2]]  # sub-cell box → one cell
    targets = torch.tensor([[0, 1, 0, 0, 16, 16]], dtype=torch.float32)
    m = masks_from_targets(targets, batch=2, size=(4, 4), stride=8)
    assert m.fg[0].sum() == 4 and m.fg[1].sum() == 0  # image 1 has no boxes
    assert torch.allclose(m.bg_scale[1], torch.full((4, 4), 1 / 16))


# --------------------------------------------------------------------------- attention
def test_attention_mask_sums() -> None:
    f = torch.randn(3, 12, 5, 7)
    s, c = attention_masks(f, 0.5)
    assert s.shape == (3, 5, 7) and c.shape == (3, 12)
    assert torch.allclose(s.sum((1, 2)), torch.full((3,), 35.0), atol=1e-4)
    assert torch.allclose(c.sum(1), torch.full((3,), 12.0), atol=1e-4)
    assert (s > 0).all() and (c > 0).all()
    s_flat, c_flat = attention_masks(torch.ones(1, 4, 3, 3), 0.5)
    assert torch.allclose(s_flat, torch.ones(1, 3, 3)) and torch.allclose(c_flat, torch.ones(1, 4))
    s_hot, _ = attention_masks(f, 0.05)
    assert s_hot.max() > s.max()  # lower temperature → sharper mask


# ------------------------------------------------------------------------------ losses
def test_feature_losses_zero_iff_equal() -> None:
    torch.manual_seed(0)
    lvl = LevelDistiller(16, 16)
    f = torch.randn(2, 16, 8, 8)
    boxes = torch.tensor([[[8.0, 8.0, 40.0, 40.0]]] * 2)
    masks = fg_bg_masks(boxes, torch.ones(2, 1, dtype=torch.bool), (8, 8), 8)
    same = lvl(f, f.clone(), masks)
    assert all(float(v.detach()) == pytest.approx(0.0, abs=1e-6) for v in same.values()), same
    diff = lvl(f + 0.5 * torch.randn_like(f), f, masks)
    assert all(float(v.detach()) > 0 for v in diff.values()), diff


def test_response_losses_zero_iff_equal() -> None:
    torch.manual_seed(0)
    crit = DetectionLoss((8, 16, 32), 2)
    outs = [torch.randn(2, 1, s, s, 7) for s in (8, 4, 2)]
    targets = torch.tensor([[0, 1, 8, 8, 40, 40], [1, 0, 4, 20, 30, 60]], dtype=torch.float32)
    rd = ResponseDistiller(crit, temperature=2.0, margin=0.01)
    same = rd(outs, [o.clone() for o in outs], targets)
    assert all(float(v) == pytest.approx(0.0, abs=1e-6) for v in same.values()), same
    other = [o + torch.randn_like(o) for o in outs]
    diff = rd(other, outs, targets)
    assert float(diff["resp_cls"]) > 0 and float(diff["resp_obj"]) > 0


def test_response_losses_anchor_based() -> None:
    torch.manual_seed(0)
    anchors = [
        [[10, 12], [16, 20], [24, 18]],
        [[30, 40], [44, 30], [50, 60]],
        [[70, 80], [90, 60], [110, 120]],
    ]
    crit = DetectionLoss((8, 16, 32), 2, "anchor_based", anchors)
    outs = [torch.randn(2, 3, s, s, 7) for s in (8, 4, 2)]
    targets = torch.tensor([[0, 1, 8, 8, 40, 40], [1, 0, 4, 20, 30, 60]], dtype=torch.float32)
    rd = ResponseDistiller(crit)
    same = rd(outs, [o.clone() for o in outs], targets)
    assert all(float(v) == pytest.approx(0.0, abs=1e-6) for v in same.values()), same
    perfect = [o.clone() for o in outs]
    worse = rd([o + torch.randn_like(o) for o in outs], perfect, targets)
    assert all(torch.isfinite(v) for v in worse.values()) and float(worse["resp_obj"]) > 0


def test_bounded_regression() -> None:
    gt = torch.tensor([[10.0, 10.0, 50.0, 30.0]])
    perfect, off = gt.clone(), gt + torch.tensor([[4.0, 2.0, -4.0, 2.0]])
    assert float(bounded_regression_loss(off, perfect, gt)) > 0  # worse than the teacher
    assert float(bounded_regression_loss(off, off.clone(), gt)) == 0  # as good
    assert float(bounded_regression_loss(perfect, off, gt)) == 0  # better
    slightly = gt + torch.tensor([[0.4, 0.0, 0.0, 0.0]])  # e_S = 1e-4 < e_T + margin
    assert float(bounded_regression_loss(slightly, perfect, gt, margin=0.01)) == 0


def _pair(nc: int = 2) -> tuple[Detector, Detector]:
    torch.manual_seed(0)
    return build_detector("tiny", nc), build_detector(TEACHER_CFG, nc)


def test_distillation_loss_zero_for_identical_models() -> None:
    s, _ = _pair()
    t = copy.deepcopy(s).eval()
    s.eval()
    crit = DetectionLoss(s.strides, 2)
    kd = DistillationLoss(crit, s.neck.out_channels, t.neck.out_channels, DistillConfig())
    x = torch.rand(2, 3, 64, 64)
    targets = torch.tensor([[0, 1, 4, 4, 40, 40], [1, 0, 10, 30, 50, 60]], dtype=torch.float32)
    with neck_features(t) as ft, torch.no_grad():
        ot = t(x)
    with neck_features(s) as fs:
        os_ = s(x)
    terms = kd.distill_terms(os_, ot, fs, ft, targets)
    assert set(terms) == set(DistillConfig().names())
    assert all(float(v.detach()) == pytest.approx(0.0, abs=1e-5) for v in terms.values()), terms


def test_gradients_reach_student_and_adapters_never_teacher() -> None:
    s, t = _pair()
    t.eval()
    for p in t.parameters():
        p.requires_grad_(False)
    crit = DetectionLoss(s.strides, 2)
    kd = DistillationLoss(crit, s.neck.out_channels, t.neck.out_channels, DistillConfig())
    assert kd.features is not None
    adapters = [lvl.adapter for lvl in kd.features.levels]
    assert all(isinstance(a, torch.nn.Conv2d) for a in adapters)  # 32/32/64 → 48/48/96
    x = torch.rand(2, 3, 64, 64)
    targets = torch.tensor([[0, 1, 4, 4, 40, 40], [1, 0, 10, 30, 50, 60]], dtype=torch.float32)
    with torch.no_grad(), neck_features(t) as ft:
        ot = t(x)
    with neck_features(s) as fs:
        os_ = s(x)
    total, parts = kd(os_, ot, fs, ft, targets)
    total.backward()
    assert all(p.grad is None for p in t.parameters())
    assert all(float(a.weight.grad.abs().sum()) > 0 for a in adapters)
    stem = s.backbone.stem.conv.weight.grad
    assert stem is not None and float(stem.abs().sum()) > 0
    assert set(parts) >= {"box", "obj", "cls", *DistillConfig().names()}


# ------------------------------------------------------------------ run, teacher, CLI
def make_samples(root: Path, n: int = 8, size: int = 64) -> list[Sample]:
    """Grey images with one bright (class 0) or dark (class 1) rectangle each."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        img = np.full((size, size, 3), 120, np.uint8)
        w, h = (int(v) for v in rng.integers(12, 32, 2))
        x, y, c = int(rng.integers(0, size - w)), int(rng.integers(0, size - h)), i % 2
        img[y : y + h, x : x + w] = 235 if c == 0 else 15
        path = root / f"img{i}.png"
        Image.fromarray(img).save(path)
        out.append(
            Sample(path, size, size, np.array([[x, y, x + w, y + h]], np.float32), np.array([c]))
        )
    return out


def calibrated_teacher(samples: list[Sample]) -> Detector:
    """An untrained teacher whose BatchNorm statistics come from the fixture images (so its
    features in eval mode have a realistic scale), frozen."""
    torch.manual_seed(1)
    t = build_detector(TEACHER_CFG, len(CLASSES))
    x = (
        torch.stack(
            [torch.from_numpy(np.array(Image.open(s.image_path))).permute(2, 0, 1) for s in samples]
        ).float()
        / 255
    )
    for m in t.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average
    with torch.no_grad():
        t.train()(x)
    return t.eval()


def _opts(out: Path, epochs: int) -> TrainOptions:
    return TrainOptions(
        data="",
        arch="tiny",
        head="anchor_free",  # the fixture teacher's head
        epochs=epochs,
        imgsz=64,
        batch=4,
        out=str(out),
        workers=0,
        threads=1,
        lr=1e-2,
        weight_decay=0.0,
        warmup_epochs=0,
        close_mosaic=0,
        augment=False,
        mosaic_prob=0.0,
        eval_interval=1000,
        ema_decay=0.9,
        cache=True,
    )


@pytest.mark.timeout(60)
def test_short_distillation_run_decreases_kd_loss(tmp_path: Path) -> None:
    samples = make_samples(tmp_path / "img", n=4)  # one batch per epoch
    teacher = Teacher(
        calibrated_teacher(samples), {"checkpoint": "t.pt", "sha256": "x"}, list(CLASSES), 64
    )
    out = tmp_path / "run"
    tr = DistillTrainer(_opts(out, 8), teacher, DistillConfig(), samples, [], CLASSES)
    tr.fit()
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    gains = DistillConfig().gains
    kd = [sum(gains[k] * r[f"loss_{k}"] for k in ("fg", "bg", "attn", "global")) for r in rows]
    assert kd[-1] < 0.8 * kd[0] and sum(b < a for a, b in itertools.pairwise(kd)) >= 5, kd
    assert all(p.grad is None for p in teacher.model.parameters())
    ck = load_checkpoint(out / "last.pt")
    assert ck["parent"] == teacher.parent and ck["distill"]["feature_kd"] is True
    assert any(k.startswith("0.features.levels.0.adapter") for k in ck["extra"])
    # resume restores the distiller modules too
    opts = _opts(out, 9)
    opts.resume = True
    tr2 = DistillTrainer(opts, teacher, DistillConfig(), samples, [], CLASSES)
    assert tr2.start_epoch == 8
    for k, v in tr2.extra.state_dict().items():
        assert torch.equal(v.cpu(), ck["extra"][k]), k


def _teacher_ckpt(path: Path, samples: list[Sample]) -> None:
    t = calibrated_teacher(samples)
    save_checkpoint(
        path,
        {
            "model_args": t.build_args(),
            "model": t.state_dict(),
            "ema": None,
            "opts": {"arch": "tiny-teacher"},
            "class_names": CLASSES,
            "imgsz": 64,
            "best_metrics": {"map50": 0.5},
        },
    )


def test_teacher_from_checkpoint_and_registry(tmp_path: Path) -> None:
    samples = make_samples(tmp_path / "img", n=2)
    ck = tmp_path / "teacher.pt"
    _teacher_ckpt(ck, samples)
    t = load_teacher(str(ck))
    assert t.parent["checkpoint"] == str(ck.resolve()) and len(t.parent["sha256"]) == 64
    assert not any(p.requires_grad for p in t.model.parameters()) and not t.model.training
    reg = tmp_path / "registry"
    (reg / "steel-teacher" / "3").mkdir(parents=True)
    (reg / "steel-teacher" / "3" / "model.pt").write_bytes(ck.read_bytes())
    (reg / "steel-teacher" / "aliases.json").write_text(json.dumps({"production": 3}))
    for ref in ("steel-teacher", "steel-teacher@production", "steel-teacher:3"):
        _, parent = resolve_teacher(ref, reg)
        assert parent["name"] == "steel-teacher" and parent["version"] == 3
    with pytest.raises(FileNotFoundError):
        resolve_teacher("steel-teacher:4", reg)


@pytest.mark.timeout(60)
def test_cli_distil_measure_and_run(tmp_path: Path) -> None:
    from models.distill.cli import distil

    samples = make_samples(tmp_path / "data" / "images" / "train", n=8)
    (tmp_path / "data" / "labels" / "train").mkdir(parents=True)
    for s in samples:
        (x1, y1, x2, y2), c = s.boxes[0], int(s.labels[0])
        line = f"{c} {(x1 + x2) / 128} {(y1 + y2) / 128} {(x2 - x1) / 64} {(y2 - y1) / 64}\n"
        (tmp_path / "data" / "labels" / "train" / f"{s.image_path.stem}.txt").write_text(line)
    data = tmp_path / "data" / "data.yaml"
    data.write_text("path: .\ntrain: images/train\nnames: [bright, dark]\n")
    ck = tmp_path / "teacher.pt"
    _teacher_ckpt(ck, samples)
    base = [
        "--teacher",
        str(ck),
        "--arch",
        "tiny",
        "--head",
        "anchor_free",  # the fixture teacher's head
        "--data",
        str(data),
        "--imgsz",
        "64",
        "--batch",
        "4",
        "--workers",
        "0",
        "--threads",
        "1",
        "--val-fraction",
        "0.25",
        "--mosaic",
        "0",
    ]
    r = CliRunner().invoke(distil, [*base, "--out", str(tmp_path / "m"), "--measure", "1"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.output[r.output.index("{") :])
    assert set(report["raw"]) >= {"fg", "bg", "attn", "global", "resp_cls", "resp_obj"}
    r = CliRunner().invoke(
        distil,
        [
            *base,
            "--out",
            str(tmp_path / "run"),
            "--epochs",
            "1",
            "--no-response-kd",
            "--kd-gain",
            "fg=0.01",
        ],
    )
    assert r.exit_code == 0, r.output
    ck_run = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ck_run["distill"]["response_kd"] is False and ck_run["distill"]["gains"]["fg"] == 0.01
    assert ck_run["parent"]["sha256"] and "resp_cls" not in json.loads(
        (tmp_path / "run" / "results.jsonl").read_text().splitlines()[0]
    ).get("loss_weights", {})


def test_students_take_the_teachers_anchors(tmp_path: Path) -> None:
    """Response KD compares heads anchor by anchor: a new student adopts an anchor-based
    teacher's anchors, whatever its own seed's k-means would give."""
    from models.train.trainer import Trainer

    samples = make_samples(tmp_path / "img", n=12)
    anchors = [[[8.0, 9.0], [12.0, 20.0], [20.0, 12.0]]] * 3
    torch.manual_seed(0)
    t = build_detector(TEACHER_CFG, len(CLASSES), "anchor_based", anchors).eval()
    opts = _opts(tmp_path / "run", 1)
    opts.head, opts.seed = "anchor_based", 1
    tr = DistillTrainer(
        opts, Teacher(t, {}, list(CLASSES), 64), DistillConfig(), samples, [], CLASSES
    )
    assert tr.model.anchors == t.anchors

    # without a teacher the anchors are k-means over the boxes, seeded by the split
    def plain(seed: int) -> object:
        o = TrainOptions(**{**opts.to_dict(), "seed": seed, "split_seed": 0})
        o.out = str(tmp_path / f"plain{seed}")
        return Trainer(o, samples, [], CLASSES).model.anchors

    assert plain(0) == plain(1) != t.anchors
