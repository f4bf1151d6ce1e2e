"""LIDD-Net as the student of the distillation trainer (models/distill/response_gfl.py):
the GFL response terms vanish when the student already gives the teacher's targets and
not otherwise, an anchor-based teacher teaches through its best anchor per cell, a few
steps lower the KD loss, feature KD adapts the 96-wide LIDD neck to T-model widths,
unsupported pairs are refused, and a 1-epoch ``lineinspect distil --arch lidd-tiny`` run
writes a checkpoint that exports with parity and names its teacher in the card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from models.detectors import build_detector, count_params
from models.detectors.gfl_head import to_contract
from models.distill import DistillationLoss, DistillConfig
from models.distill.response_gfl import GFLResponseDistiller, teacher_cells
from models.distill.trainer import check_compatible, neck_features
from models.losses.gfl import GFLLoss
from models.train.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from tests.support.tiny_dataset import write_tiny_dataset
from tests.unit.test_distill import CLASSES, _teacher_ckpt, calibrated_teacher, make_samples

NC, REG = 2, 7
TARGETS = torch.tensor([[0, 1, 4, 4, 40, 40], [1, 0, 10, 30, 50, 60]], dtype=torch.float32)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _crit() -> GFLLoss:
    return GFLLoss((8, 16, 32), NC, REG, "none")


def _raw_student(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, s, s, NC + 4 * (REG + 1), generator=g) for s in (8, 4, 2)]


# ------------------------------------------------------------------------------ terms
def test_gfl_response_zero_for_own_targets_positive_otherwise() -> None:
    """The teacher is the student's own served output (same boxes, score = sigmoid(cls)):
    nothing to learn. Other class logits or box distributions cost."""
    raw = _raw_student()
    teacher = [to_contract(r, NC, REG) for r in raw]  # anchor-free [B,1,H,W,5+C], obj 20
    # a margin above float rounding (exp(log(l + r)) is not l + r to the last bit)
    rd = GFLResponseDistiller(_crit(), "anchor_free", None, temperature=2.0, margin=1e-5)
    same = rd(raw, teacher, TARGETS)
    assert set(same) == {"resp_cls", "resp_box"}
    assert all(float(v) == pytest.approx(0.0, abs=1e-5) for v in same.values()), same
    cls_off = [r.clone() for r in raw]
    for r in cls_off:
        r[..., :NC] += torch.randn_like(r[..., :NC])
    d = rd(cls_off, teacher, TARGETS)
    assert float(d["resp_cls"]) > 1e-3 and float(d["resp_box"]) == pytest.approx(0.0, abs=1e-6)
    box_off = [r.clone() for r in raw]
    for r in box_off:
        r[..., NC:] += 3 * torch.randn_like(r[..., NC:])
    d = rd(box_off, teacher, TARGETS)
    assert float(d["resp_box"]) > 1e-3 and float(d["resp_cls"]) == pytest.approx(0.0, abs=1e-5)
    # a worse box by less than the margin is free
    loose = GFLResponseDistiller(_crit(), "anchor_free", None, margin=1e6)
    assert float(loose(box_off, teacher, TARGETS)["resp_box"]) == 0.0


def test_anchor_based_teacher_teaches_through_its_best_anchor() -> None:
    torch.manual_seed(0)
    af = [torch.randn(2, 1, s, s, 5 + NC) for s in (8, 4, 2)]
    ab = []
    for o in af:
        dead = torch.randn(2, 2, *o.shape[2:])
        dead[..., 4] = -30.0  # no object: joint score ~ 0
        ab.append(torch.cat((dead[:, :1], o, dead[:, 1:]), 1))  # the live anchor is anchor 1
    anchors = [[[10.0, 12.0], [16.0, 20.0], [24.0, 18.0]]] * 3
    logit_af, obj_af, _ = teacher_cells(af, (8, 16, 32), "anchor_free", None)
    logit_ab, obj_ab, box_ab = teacher_cells(ab, (8, 16, 32), "anchor_based", anchors)
    assert torch.allclose(logit_ab, logit_af) and torch.allclose(obj_ab, obj_af)
    assert box_ab.shape == (2, 84, 4) and torch.isfinite(box_ab).all()
    # the anchor-based teacher's terms are the ones of its live anchor alone
    rd_ab = GFLResponseDistiller(_crit(), "anchor_based", anchors)
    rd_af = GFLResponseDistiller(_crit(), "anchor_free", None)
    raw = _raw_student(1)
    cls_ab, cls_af = rd_ab(raw, ab, TARGETS)["resp_cls"], rd_af(raw, af, TARGETS)["resp_cls"]
    assert float(cls_ab) > 0 and torch.isclose(cls_ab, cls_af)
    with pytest.raises(ValueError, match="anchors"):
        GFLResponseDistiller(_crit(), "anchor_based", None)
    with pytest.raises(ValueError, match="grid"):
        rd_af(raw, [o[:, :, :-1] for o in af], TARGETS)


def _images(samples: list) -> torch.Tensor:  # type: ignore[type-arg]
    arrs = [np.array(Image.open(s.image_path)) for s in samples]
    return torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).float() / 255


@pytest.mark.timeout(120)
def test_kd_steps_lower_the_kd_loss(tmp_path: Path) -> None:
    samples = make_samples(tmp_path / "img", n=4)
    teacher = calibrated_teacher(samples)
    x = _images(samples)
    targets = torch.tensor(
        [[i, int(s.labels[0]), *s.boxes[0].tolist()] for i, s in enumerate(samples)]
    )
    torch.manual_seed(0)
    student = build_detector("lidd-tiny", len(CLASSES)).train()
    crit = GFLLoss.for_model(student)
    cfg = DistillConfig()
    rd = GFLResponseDistiller.for_teacher(crit, teacher, cfg.resp_temperature, cfg.margin)
    kd = DistillationLoss(
        crit, student.neck.out_channels, teacher.neck.out_channels, cfg, response=rd
    )
    assert kd.names == ("fg", "bg", "attn", "global", "resp_cls", "resp_box")
    with torch.no_grad(), neck_features(teacher) as ft:
        ot = teacher(x)
    opt = torch.optim.Adam([*student.parameters(), *kd.parameters()], lr=3e-3)
    history = []
    for _ in range(12):
        with neck_features(student) as fs:
            os_ = student(x)
        terms = kd.distill_terms(os_, ot, fs, ft, targets)
        loss = sum(cfg.gains[k] * v for k, v in terms.items())
        assert isinstance(loss, torch.Tensor)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append({k: float(v.detach()) for k, v in terms.items()})
    total = [sum(cfg.gains[k] * v for k, v in h.items()) for h in history]
    assert total[-1] < 0.7 * total[0], total
    assert history[-1]["resp_cls"] < history[0]["resp_cls"], history
    assert all(p.grad is None for p in teacher.parameters())


def test_feature_kd_adapts_the_lidd_neck_to_t_model_widths() -> None:
    torch.manual_seed(0)
    student, teacher = build_detector("lidd-net", NC).train(), build_detector("t-model", NC)
    teacher.eval()
    assert student.neck.out_channels == (96, 96, 96)
    cfg = DistillConfig(response_kd=False)
    kd = DistillationLoss(
        GFLLoss.for_model(student), student.neck.out_channels, teacher.neck.out_channels, cfg
    )
    assert kd.features is not None
    adapters = [lvl.adapter for lvl in kd.features.levels]
    shapes = [tuple(a.weight.shape[:2]) for a in adapters]
    assert shapes == [(128, 96), (144, 96), (176, 96)]  # t-model neck 128/144/176
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad(), neck_features(teacher) as ft:
        ot = teacher(x)
    with neck_features(student) as fs:
        os_ = student(x)
    grids = [(8, 8), (4, 4), (2, 2)]
    assert [tuple(f.shape[-2:]) for f in fs] == [tuple(f.shape[-2:]) for f in ft] == grids
    total, parts = kd(os_, ot, fs, ft, TARGETS)
    total.backward()
    assert set(parts) == {"cls", "box", "dfl", "aux", "fg", "bg", "attn", "global"}
    assert all(float(a.weight.grad.abs().sum()) > 0 for a in adapters)
    assert float(student.neck.lat[0].conv.weight.grad.abs().sum()) > 0


def test_unsupported_pairs_are_refused() -> None:
    lidd, tiny = build_detector("lidd-tiny", NC), build_detector("tiny", NC)
    with pytest.raises(ValueError, match="LIDD-Net teacher"):
        check_compatible(tiny, lidd, CLASSES, CLASSES, True)
    with pytest.raises(ValueError, match="LIDD-Net teacher"):
        check_compatible(lidd, build_detector("lidd-tiny", NC), CLASSES, CLASSES, False)
    check_compatible(lidd, tiny, CLASSES, CLASSES, True, True)  # LIDD student, T/S teacher
    anchors = [[[8.0, 9.0], [12.0, 20.0], [20.0, 12.0]]] * 3
    based = build_detector("tiny", NC, "anchor_based", anchors)
    check_compatible(lidd, based, CLASSES, CLASSES, True)  # max over a cell's anchors
    with pytest.raises(ValueError, match="classes"):
        check_compatible(lidd, tiny, CLASSES, ["a", "b"], True)
    with pytest.raises(ValueError, match="GFLResponseDistiller"):
        DistillationLoss(GFLLoss.for_model(lidd), (16,) * 3, (32, 32, 64), DistillConfig())


# ------------------------------------------------------------------------ CLI + export
@pytest.mark.timeout(240)
def test_cli_distil_lidd_student_exports(tmp_path: Path) -> None:
    from models.cli import export
    from models.distill.cli import distil

    data = write_tiny_dataset(tmp_path / "data")
    teacher_ck = tmp_path / "teacher.pt"
    _teacher_ckpt(teacher_ck, make_samples(tmp_path / "calib", n=4))
    base = [
        *("--teacher", str(teacher_ck), "--arch", "lidd-tiny", "--data", str(data)),
        *("--imgsz", "64", "--batch", "4", "--workers", "0", "--threads", "1"),
        *("--mosaic", "0", "--close-mosaic", "0", "--eval-interval", "1000"),
        *("--warmup-epochs", "0"),
    ]
    r = CliRunner().invoke(distil, [*base, "--out", str(tmp_path / "m"), "--measure", "1"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.output[r.output.index("{") :])
    terms = {"cls", "box", "dfl", "aux", "fg", "bg", "attn", "global", "resp_cls", "resp_box"}
    assert set(report["raw"]) == terms
    assert report["detection_total"] > 0 and report["distill_total"] > 0

    out = tmp_path / "run"
    r = CliRunner().invoke(distil, [*base, "--out", str(out), "--epochs", "1"])
    assert r.exit_code == 0, r.output
    row = json.loads((out / "results.jsonl").read_text().splitlines()[0])
    assert {"loss_resp_cls", "loss_resp_box", "loss_fg", "loss_dfl"} <= set(row), row
    assert "loss_resp_obj" not in row
    ck = load_checkpoint(out / "last.pt")
    assert ck["model_args"]["cfg"]["name"] == "lidd-tiny"
    assert ck["parent"]["sha256"] and ck["parent"]["architecture"] == "tiny-teacher"
    assert ck["distill"]["feature_kd"] and ck["distill"]["response_kd"]
    assert not any(k.startswith("teacher") for k in ck["model"])

    r = CliRunner().invoke(export, [str(out / "last.pt"), "--out", str(tmp_path / "x")])
    assert r.exit_code == 0, r.output
    card = json.loads((tmp_path / "x" / "card.json").read_text())
    model = model_from_checkpoint(ck)
    assert card["architecture"] == "lidd-tiny" and card["head"] == "anchor_free"
    assert card["parent"] == ck["parent"] and card["distillation"] == ck["distill"]
    assert card["params"] == count_params(model.deploy()) < count_params(model)
    assert card["parity"]["max_raw_diff"] < 1e-3 and card["parity"]["detections_low_thr"] > 0


def test_cli_refuses_a_lidd_teacher(tmp_path: Path) -> None:
    from models.distill.cli import distil

    data = write_tiny_dataset(tmp_path / "data", n=4)
    t = build_detector("lidd-tiny", len(CLASSES))
    ck = tmp_path / "lidd.pt"
    save_checkpoint(
        ck,
        {
            "model_args": t.build_args(),
            "model": t.state_dict(),
            "ema": None,
            "opts": {"arch": "lidd-tiny"},
            "class_names": list(CLASSES),
            "imgsz": 64,
        },
    )
    args = [
        *("--teacher", str(ck), "--arch", "lidd-tiny", "--data", str(data), "--imgsz", "64"),
        *("--workers", "0", "--threads", "1", "--out", str(tmp_path / "run"), "--epochs", "1"),
    ]
    r = CliRunner().invoke(distil, args)
    assert r.exit_code != 0 and "LIDD-Net teacher" in r.output, r.output
    assert not (tmp_path / "run" / "last.pt").exists()
