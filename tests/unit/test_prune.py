"""Compression (models/prune) on the tiny variant: the sparsity term, channel and layer
pruning, the saved structure (reload, resume, ONNX parity), KD fine-tuning and the
whole pipeline with its card."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from models.detectors import Detector, build_detector, count_params
from models.distill import DistillConfig
from models.distill.teacher import Teacher
from models.export import export_checkpoint
from models.nn.conv import Bottleneck
from models.prune import PRUNING_FIELDS, PruneOptions, run_prune
from models.prune.channels import prune_channels
from models.prune.graph import build_pruner, prunable_bns, prunable_groups
from models.prune.layers import candidate_blocks, remove_blocks, weakest_blocks
from models.prune.structure import structure_diff
from models.prune.trainers import FinetuneTrainer, SparseTrainer
from models.train.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from models.train.options import TrainOptions
from tests.unit.test_distill import CLASSES, calibrated_teacher, make_samples

IMGSZ = 64


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _tiny(seed: int = 0) -> Detector:
    """A tiny detector with spread-out BatchNorm scales (as after sparse training)."""
    torch.manual_seed(seed)
    m = build_detector("tiny", len(CLASSES))
    with torch.no_grad():
        for b in m.modules():
            if isinstance(b, nn.BatchNorm2d):
                b.weight.uniform_(0.0, 1.0)
    return m.eval()


def _checkpoint(model: Detector) -> dict[str, object]:
    return {
        "model_args": model.build_args(),
        "model": model.state_dict(),
        "structure": structure_diff(model),
        "class_names": CLASSES,
        "imgsz": IMGSZ,
        "spec": model.spec(CLASSES, IMGSZ).to_json(),
        "opts": {"arch": "tiny", "data": "", "val_fraction": 0.15, "seed": 0},
    }


def _pruned(ratio: float = 0.5, k: int = 1) -> Detector:
    m = _tiny()
    prune_channels(m, IMGSZ, ratio)
    remove_blocks(m, weakest_blocks(m, k))
    return m.eval()


def test_sparsity_term_shrinks_only_prunable_bn_scales() -> None:
    m = _tiny().train()
    with torch.no_grad():
        for b in m.modules():
            if isinstance(b, nn.BatchNorm2d):
                b.weight.clamp_(min=0.1)  # no scale crosses zero in the one step below
    pruner = build_pruner(m, IMGSZ, reg=0.05)
    bns = prunable_bns(pruner)
    assert bns and all(isinstance(b, nn.BatchNorm2d) for b in bns)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    for p in m.parameters():
        p.grad = torch.zeros_like(p)
    pruner.regularize(m)  # what SparseTrainer.after_backward calls
    torch.optim.SGD(m.parameters(), lr=1.0).step()
    scales = {id(b.weight) for b in bns}
    changed = 0
    for name, p in m.named_parameters():
        if id(p) in scales:
            assert bool((p.abs() < before[name].abs()).all()), name
            changed += 1
        else:
            assert torch.equal(p, before[name]), f"{name} moved"
    assert changed == len(bns)
    # attention internals and the head's prediction convs are not penalised
    attn_bn = m.head.cls_convs[0][-1].spatial.bn
    assert id(attn_bn.weight) not in scales


@pytest.mark.timeout(60)
def test_sparse_trainer_logs_gamma_histogram(tmp_path: Path) -> None:
    samples = make_samples(tmp_path / "img", n=4)
    opts = TrainOptions(
        data="",
        arch="tiny",
        head="anchor_free",
        epochs=2,
        imgsz=IMGSZ,
        batch=4,
        out=str(tmp_path / "run"),
        workers=0,
        threads=1,
        warmup_epochs=0,
        close_mosaic=0,
        augment=False,
        mosaic_prob=0.0,
        eval_interval=1000,
        lr=1e-2,
    )
    tr = SparseTrainer(opts, 1e-2, train_samples=samples, val_samples=[], class_names=CLASSES)
    tr.fit()
    rows = [json.loads(x) for x in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(r["sparsity_lambda"] == 1e-2 for r in rows)
    h = rows[-1]["gamma"]
    assert sum(h["counts"]) == h["channels"] == sum(b.num_features for b in tr.bns)
    assert rows[1]["gamma"]["mean"] < rows[0]["gamma"]["mean"] < 1.0  # gammas start at 1


def test_channel_pruning_removes_about_the_ratio() -> None:
    m = _tiny()
    x = torch.rand(2, 3, IMGSZ, IMGSZ)
    with torch.no_grad():
        shapes = [o.shape for o in m(x)]
    p0 = count_params(m)
    rep = prune_channels(m, IMGSZ, 0.5)
    assert abs(rep["pruned_share"] - 0.5) < 0.08, rep
    assert rep["prunable_channels_after"] < rep["prunable_channels_before"]
    assert count_params(m) < 0.7 * p0
    with torch.no_grad():
        assert [o.shape for o in m.eval()(x)] == shapes  # the contract outputs are untouched
    assert m.neck.out_channels == tuple(s.conv.in_channels for s in m.head.stems)


def test_channel_pruning_reaches_the_ratio_where_whole_layers_fall_below_it() -> None:
    """After sparse training the small gamma gather in a few layers, whole layers under
    the global threshold: each still keeps its 1 - max_ratio strongest channels, and the
    share removed is the ratio asked for."""
    m = _tiny()
    groups = [  # conv-rooted groups with a BatchNorm: the ones gamma scores
        g
        for g in prunable_groups(build_pruner(m, IMGSZ))
        if isinstance(g[0][0].target.module, nn.Conv2d)
        and any(isinstance(dep.target.module, nn.BatchNorm2d) for dep, _ in g)
    ]
    groups.sort(key=lambda g: -g[0][0].target.module.out_channels)
    total = sum(g[0][0].target.module.out_channels for g in groups)
    with torch.no_grad():
        for b in m.modules():
            if isinstance(b, nn.BatchNorm2d):
                b.weight.uniform_(0.5, 1.0)
        n = 0
        for g in groups:  # near-zero gamma on about 70 % of the prunable channels
            if n >= 0.7 * total:
                break
            n += g[0][0].target.module.out_channels
            for dep, _ in g:
                if isinstance(dep.target.module, nn.BatchNorm2d):
                    dep.target.module.weight.uniform_(0.0, 1e-3)
    widths = {k: c.out_channels for k, c in m.named_modules() if isinstance(c, nn.Conv2d)}
    rep = prune_channels(m, IMGSZ, 0.75, max_ratio=0.9)
    assert abs(rep["pruned_share"] - 0.75) <= 0.02, rep
    for k, c in m.named_modules():
        if isinstance(c, nn.Conv2d):
            assert c.out_channels >= max(1, math.floor(0.1 * widths[k])), k
    with torch.no_grad():
        m.eval()(torch.rand(1, 3, IMGSZ, IMGSZ))


def test_channel_pruning_refuses_a_ratio_above_the_cap() -> None:
    with pytest.raises(ValueError, match="cap"):
        prune_channels(_tiny(), IMGSZ, 0.95, max_ratio=0.9)


def test_layer_pruning_removes_exactly_the_named_blocks() -> None:
    m = _tiny()
    names = sorted(candidate_blocks(m))
    assert names == [f"backbone.stage{i}.c3.m.0" for i in (1, 2, 3)]
    with torch.no_grad():
        for n in names:
            m.get_submodule(n).cv2.bn.weight.fill_(0.5)
        m.get_submodule("backbone.stage2.c3.m.0").cv1.bn.weight.fill_(0.01)
    weakest = weakest_blocks(m, 1)
    assert weakest == ["backbone.stage2.c3.m.0"]
    n_blocks = sum(isinstance(x, Bottleneck) for x in m.modules())
    remove_blocks(m, weakest)
    assert isinstance(m.get_submodule("backbone.stage2.c3.m.0"), nn.Identity)
    assert sum(isinstance(x, Bottleneck) for x in m.modules()) == n_blocks - 1
    assert sorted(candidate_blocks(m)) == [names[0], names[2]]
    m(torch.rand(2, 3, IMGSZ, IMGSZ))
    with pytest.raises(ValueError):
        remove_blocks(m, ["neck.td3.c3.m.0"])  # no shortcut: not removable
    with pytest.raises(ValueError):
        weakest_blocks(m, 3)


def test_pruned_model_saves_reloads_resumes_and_exports(tmp_path: Path) -> None:
    m = _pruned()
    ck = _checkpoint(m)
    assert ck["structure"] and "backbone.stage1.c3.m.0" in str(ck["structure"])
    save_checkpoint(tmp_path / "p.pt", ck)
    back = model_from_checkpoint(load_checkpoint(tmp_path / "p.pt"))
    x = torch.rand(2, 3, IMGSZ, IMGSZ)
    with torch.no_grad():
        for a, b in zip(m(x), back(x), strict=True):
            assert torch.allclose(a, b, atol=1e-6)
    assert count_params(back) == count_params(m) and structure_diff(back) == ck["structure"]
    assert structure_diff(_tiny()) is None  # an unpruned model records nothing
    card = export_checkpoint(ck, back, tmp_path / "export", weights=True)
    assert card["parity"]["max_raw_diff"] < 1e-3 and card["params"] == count_params(m)
    slim = load_checkpoint(tmp_path / "export" / "model.pt")  # the registry's model.pt
    assert slim["structure"] == ck["structure"]
    assert count_params(model_from_checkpoint(slim)) == count_params(m)


def _ft_opts(out: Path, epochs: int, init_from: str) -> TrainOptions:
    return TrainOptions(
        data="",
        arch="tiny",
        head="anchor_free",
        epochs=epochs,
        imgsz=IMGSZ,
        batch=4,
        out=str(out),
        workers=0,
        threads=1,
        lr=5e-3,
        weight_decay=0.0,
        warmup_epochs=0,
        close_mosaic=0,
        augment=False,
        mosaic_prob=0.0,
        eval_interval=1000,
        ema_decay=0.9,
        init_from=init_from,
        adaptive_weights=False,
    )


@pytest.mark.timeout(90)
def test_kd_finetune_of_pruned_model_lowers_loss_and_resumes(tmp_path: Path) -> None:
    samples = make_samples(tmp_path / "img", n=4)
    t = calibrated_teacher(samples)
    student = build_detector(t.cfg, len(CLASSES))
    student.load_state_dict(t.state_dict())
    prune_channels(student, IMGSZ, 0.4)
    save_checkpoint(tmp_path / "pruned.pt", _checkpoint(student))
    teacher = Teacher(t, {"checkpoint": "t.pt", "sha256": "x"}, list(CLASSES), IMGSZ)
    cfg = DistillConfig(feature_kd=False, response_kd=True)
    pruning = {"ratio": 0.4}
    out = tmp_path / "ft"
    opts = _ft_opts(out, 6, str(tmp_path / "pruned.pt"))
    tr = FinetuneTrainer(
        opts,
        teacher,
        cfg,
        pruning,
        None,
        train_samples=samples,
        val_samples=[],
        class_names=CLASSES,
    )
    assert count_params(tr.model) == count_params(student)
    tr.fit()
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    total = [
        sum(v for k, v in r.items() if k.startswith("loss_") and k != "loss_weights") for r in rows
    ]
    assert total[-1] < total[0] and all(f"loss_{k}" in rows[0] for k in cfg.names()), rows
    ck = load_checkpoint(out / "last.pt")
    assert ck["pruning"]["ratio"] == 0.4 and ck["pruning"]["teacher"] == teacher.parent
    opts = _ft_opts(out, 7, str(tmp_path / "pruned.pt"))
    opts.resume = True  # the pruned structure comes back from last.pt, not the variant table
    tr2 = FinetuneTrainer(
        opts,
        teacher,
        cfg,
        pruning,
        None,
        train_samples=samples,
        val_samples=[],
        class_names=CLASSES,
    )
    assert tr2.start_epoch == 6 and count_params(tr2.model) == count_params(student)


def _dataset(root: Path) -> Path:
    samples = make_samples(root / "images" / "train", n=8)
    (root / "labels" / "train").mkdir(parents=True)
    for s in samples:
        (x1, y1, x2, y2), c = s.boxes[0], int(s.labels[0])
        line = f"{c} {(x1 + x2) / 128} {(y1 + y2) / 128} {(x2 - x1) / 64} {(y2 - y1) / 64}\n"
        (root / "labels" / "train" / f"{s.image_path.stem}.txt").write_text(line)
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nnames: [bright, dark]\n")
    return root / "data.yaml"


@pytest.mark.timeout(120)
def test_pipeline_card_has_complete_pruning_fields(tmp_path: Path) -> None:
    data = _dataset(tmp_path / "data")
    src = build_detector("tiny", len(CLASSES))
    ck = _checkpoint(src)
    ck["opts"] = {"arch": "tiny", "data": str(data), "val_fraction": 0.25, "seed": 0}
    save_checkpoint(tmp_path / "src.pt", ck)
    progress: list[str] = []
    o = PruneOptions(
        source=str(tmp_path / "src.pt"),
        data=str(data),
        out=str(tmp_path / "run"),
        ratio=0.5,
        layers=1,
        sparse_epochs=1,
        finetune_epochs=1,
        imgsz=IMGSZ,
        batch=4,
        val_fraction=0.25,
        threads=1,
        workers=0,
        max_iters_per_epoch=1,
        bench_seconds=0.05,
    )
    card = run_prune(o, lambda stage, frac, info: progress.append(stage))
    p = card["pruning"]
    missing = [k for k in PRUNING_FIELDS if p.get(k) is None and k != "removed_blocks"]
    assert not missing, missing
    assert p["ratio"] == 0.5 and p["layers"] == 1 and len(p["removed_blocks"]) == 1
    assert p["sparsity_lambda"] == o.sparsity and p["source"]["ref"] == str(tmp_path / "src.pt")
    assert p["params_after"] < p["params_before"] and p["gflops_after"] < p["gflops_before"]
    assert p["teacher"]["sha256"] == p["source"]["sha256"]  # default teacher: the source
    assert set(p["throughput"]) >= {"source", "pruned", "speedup"}
    saved = json.loads((tmp_path / "run" / "export" / "card.json").read_text())
    assert saved["pruning"] == p and card["params"] == p["params_after"]
    assert {"sparse", "prune", "finetune", "export"} <= set(progress)
    rows = (tmp_path / "run" / "sparse" / "results.jsonl").read_text().splitlines()
    assert "gamma" in json.loads(rows[0])
    with pytest.raises(ValueError):
        run_prune(o)  # a used run directory needs resume
    o.resume = True
    again = run_prune(o)  # every stage is found done; export is redone
    assert again["pruning"]["params_after"] == p["params_after"]
    assert np.isfinite(again["metrics"].get("map50", 0.0))


def test_job_params_are_checked() -> None:
    o = PruneOptions.from_params({"source": "m", "data": "d.yaml", "out": "o", "ratio": 0.6})
    assert o.ratio == 0.6 and o.layers == 0 and o.teacher == ""
    with pytest.raises(ValueError, match="ratoi"):
        PruneOptions.from_params({"source": "m", "data": "d.yaml", "out": "o", "ratoi": 0.6})
