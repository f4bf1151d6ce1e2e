"""Distillation glue on top of :class:`models.train.trainer.Trainer` (its loop, EMA,
checkpoints, resume, progress bar and evaluation are reused as they are).

The teacher is frozen (eval mode, no gradients, never in the optimiser or the checkpoint's
weights) and runs under ``torch.no_grad()``; the neck outputs of both models are read with
forward hooks registered for the duration of one forward pass, so nothing lingers on the
student (or on its EMA copy). The distiller's modules (adapters, context modules) are the
trainer's ``extra`` modules: optimised and checkpointed with the student.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.data import Sample
from models.detectors import Detector
from models.detectors.lidd import LIDDNet
from models.distill.loss import DistillationLoss, DistillConfig
from models.distill.response_gfl import GFLResponseDistiller
from models.distill.teacher import Teacher
from models.registry import BUNDLED_ROOT
from models.train.options import TrainOptions
from models.train.trainer import Trainer

log = logging.getLogger(__name__)


@contextmanager
def neck_features(model: Detector) -> Iterator[list[torch.Tensor]]:
    """Collect ``model``'s neck outputs (one tensor per level) during the ``with`` block."""
    feats: list[torch.Tensor] = []

    def hook(_m: nn.Module, _inp: Any, out: Sequence[torch.Tensor]) -> None:
        feats[:] = list(out)

    handle = model.neck.register_forward_hook(hook)
    try:
        yield feats
    finally:
        handle.remove()


def check_compatible(
    student: Detector | LIDDNet,
    teacher: Detector | LIDDNet,
    class_names: Sequence[str],
    teacher_names: Sequence[str],
    response_kd: bool,
    feature_kd: bool = True,
) -> None:
    """Raise ``ValueError`` when the teacher cannot teach this student. Teachers are
    T/S-models; students T/S-models (same head kind and anchors for response KD) or
    LIDD-Nets (anchor-free or anchor-based teacher, see models/distill/response_gfl.py)."""
    if isinstance(teacher, LIDDNet):
        raise ValueError(
            f"a LIDD-Net teacher ({teacher.cfg.name}) is not supported: its training outputs "
            "are GFL logits and its eval outputs carry no objectness; use a T-model or "
            "S-model teacher"
        )
    if not isinstance(teacher, Detector):
        raise ValueError(f"unsupported teacher {type(teacher).__name__}: use a T/S-model")
    if list(class_names) != list(teacher_names):
        raise ValueError(f"teacher classes {list(teacher_names)} != data {list(class_names)}")
    if tuple(student.strides) != tuple(teacher.strides):
        raise ValueError(f"teacher strides {teacher.strides} != student strides {student.strides}")
    n_s, n_t = len(student.neck.out_channels), len(teacher.neck.out_channels)
    if feature_kd and n_s != n_t:
        raise ValueError(f"feature KD needs as many neck levels: student {n_s}, teacher {n_t}")
    if isinstance(student, LIDDNet):
        return  # response KD works with either teacher head (response_gfl.py)
    same_head = student.head_kind == teacher.head_kind and student.anchors == teacher.anchors
    if response_kd and not same_head:
        raise ValueError("response distillation needs the teacher's head kind and anchors")


def check_teacher_data(teacher: Teacher, student_fingerprint: str) -> bool:
    """Warn (and return False) when the teacher trained on other samples than the student.

    A teacher that saw the student's validation carve-out passes those images' labels on
    through its outputs, and the student's validation mAP is then optimistic. Same data
    and the same ``--split-seed`` (default ``--seed``) as the teacher rule that out."""
    fp = teacher.data_fingerprint
    if fp is None or fp == student_fingerprint:
        return True
    log.warning(
        "the teacher trained on other samples (data fingerprint %s) than this student (%s): "
        "if they include this run's validation carve-out its mAP is optimistic; use the "
        "teacher's data and --split-seed",
        fp,
        student_fingerprint,
    )
    return False


class DistillTrainer(Trainer):
    """Trains the student with the detection loss plus the distillation terms (eq. 17)."""

    def __init__(
        self,
        opts: TrainOptions,
        teacher: Teacher,
        distill: DistillConfig | None = None,
        train_samples: Sequence[Sample] | None = None,
        val_samples: Sequence[Sample] | None = None,
        class_names: Sequence[str] | None = None,
        *,
        registry_root: Path = BUNDLED_ROOT,
    ) -> None:
        self.teacher = teacher
        self.dcfg = distill or DistillConfig()
        super().__init__(opts, train_samples, val_samples, class_names, registry_root=registry_root)

    def new_anchors(self) -> list[list[list[float]]]:
        """An anchor-based teacher's anchors: response KD compares the two heads anchor by
        anchor, so a new student takes them instead of its own k-means."""
        if self.teacher.model.head_kind == "anchor_based" and self.teacher.model.anchors:
            return [[list(map(float, a)) for a in level] for level in self.teacher.model.anchors]
        return super().new_anchors()

    def build_extra(self) -> list[nn.Module]:
        """Freeze and place the teacher; build the distiller; extend the loss names."""
        t = self.teacher.model
        d = self.dcfg
        check_compatible(
            self.model, t, self.class_names, self.teacher.class_names, d.response_kd, d.feature_kd
        )
        if self.teacher.imgsz != self.opts.imgsz:
            log.warning(
                "teacher trained at %d px, distilling at %d px", self.teacher.imgsz, self.opts.imgsz
            )
        check_teacher_data(self.teacher, self.fingerprint)
        t.to(self.device).eval()
        for p in t.parameters():
            p.requires_grad_(False)
        response = (
            GFLResponseDistiller.for_teacher(self.criterion, t, d.resp_temperature, d.margin)
            if isinstance(self.model, LIDDNet) and d.response_kd
            else None
        )
        self.kd = DistillationLoss(
            self.criterion, self.model.neck.out_channels, t.neck.out_channels, d, response=response
        ).to(self.device)
        self.loss_names = self.loss_names + self.kd.names
        log.info("distilling from %s: terms %s", self.teacher.parent, list(self.kd.names))
        return [self.kd]

    def compute_loss(
        self, images: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Teacher forward (no grad) + student forward + eq. 17."""
        if not self.kd.names:
            return super().compute_loss(images, targets)
        t = self.teacher.model
        t.eval()
        with (
            torch.no_grad(),
            neck_features(t) as feats_t,
            torch.autocast(self.device.type, enabled=self.amp),
        ):
            outs_t = t(images)
        with (
            neck_features(self.model) as feats_s,
            torch.autocast(self.device.type, enabled=self.amp),
        ):
            outs_s = self.net(images)  # DDP under torchrun; the neck hook still fires
        out: tuple[torch.Tensor, dict[str, torch.Tensor]] = self.kd(
            outs_s, outs_t, feats_s, feats_t, targets, self.weights.weights
        )
        return out

    def state(self, epoch: int) -> dict[str, Any]:
        """The trainer's state plus the teacher (``parent``, for the card) and KD settings."""
        st = super().state(epoch)
        st["parent"] = dict(self.teacher.parent)
        st["distill"] = self.dcfg.to_dict()
        return st
