"""Total distillation loss (attention-kd paper eq. 17) next to the detection loss.

``Total = sum_k g_k w_k L_k`` over the detection terms of :class:`DetectionLoss` (QFocal
``obj``/``cls`` and CIoU ``box``, with its own gains: the paper's ``2 delta QFL + epsilon
L_CIoU``) and the distillation terms (``alpha L_fg + beta L_A + gamma L_G`` of eq. 17, plus
``bg`` split from ``L_fg`` as in FGD, plus the response terms). ``g_k`` are the fixed gains of
:data:`DEFAULT_KD_GAINS` (they bring each term to the scale of the detection loss, see
docs/distillation.md); ``w_k`` are the adaptive weights of eq. 18, updated once per epoch by
the trainer's :class:`~models.losses.AdaptiveLossWeights` over all terms together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from models.distill.feature import FEATURE_TERMS, FeatureDistiller
from models.distill.response import RESPONSE_TERMS, ResponseDistiller
from models.distill.response_gfl import GFLResponseDistiller
from models.losses import DetectionLoss
from models.losses.gfl import GFLLoss

# Chosen from the per-term magnitudes of docs/distillation.md (224 px, s-model <- t-model).
DEFAULT_KD_GAINS: dict[str, float] = {
    "fg": 1e-3,
    "bg": 5e-4,
    "attn": 4e-3,
    "global": 2e-5,
    "resp_cls": 1.0,
    "resp_obj": 1.0,
    "resp_box": 2.5,
}


@dataclass
class DistillConfig:
    """Which distillation terms run, their temperatures, margin and gains."""

    feature_kd: bool = True
    response_kd: bool = True
    attn_temperature: float = 0.5  # FGD-style attention masks (eq. 10)
    resp_temperature: float = 2.0  # soft targets (pruning-kd eq. 12-14)
    margin: float = 0.01  # teacher-bounded regression (eq. 16), relative squared error
    gains: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_KD_GAINS))

    def names(self) -> tuple[str, ...]:
        """Names of the enabled distillation terms of a T/S-model student."""
        return (FEATURE_TERMS if self.feature_kd else ()) + (
            RESPONSE_TERMS if self.response_kd else ()
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (stored in checkpoints)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DistillConfig:
        """Inverse of :meth:`to_dict` (unknown keys are ignored, missing gains defaulted)."""
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        known["gains"] = dict(DEFAULT_KD_GAINS, **known.get("gains", {}))
        return cls(**known)


class DistillationLoss(nn.Module):
    """Detection loss + distillation terms. Holds the trainable distiller modules (adapters,
    context modules): add :meth:`parameters` to the optimiser next to the student's.

    ``criterion`` is the student's own loss: :class:`DetectionLoss` for a T/S-model, whose
    response terms come from :class:`ResponseDistiller`, or :class:`GFLLoss` for a LIDD-Net,
    which needs ``response``, a :class:`GFLResponseDistiller` (it depends on the teacher's
    head, see :meth:`GFLResponseDistiller.for_teacher`)."""

    def __init__(
        self,
        criterion: DetectionLoss | GFLLoss,
        student_channels: Sequence[int],
        teacher_channels: Sequence[int],
        cfg: DistillConfig | None = None,
        *,
        response: ResponseDistiller | GFLResponseDistiller | None = None,
    ) -> None:
        super().__init__()
        self.cfg = cfg or DistillConfig()
        self.criterion = criterion
        self.features = (
            FeatureDistiller(
                student_channels, teacher_channels, criterion.strides, self.cfg.attn_temperature
            )
            if self.cfg.feature_kd
            else None
        )
        self.response: ResponseDistiller | GFLResponseDistiller | None = None
        if self.cfg.response_kd:
            if response is not None:
                self.response = response
            elif isinstance(criterion, GFLLoss):
                raise ValueError("a GFL student's response KD needs a GFLResponseDistiller")
            else:
                self.response = ResponseDistiller(
                    criterion, self.cfg.resp_temperature, self.cfg.margin
                )

    @property
    def names(self) -> tuple[str, ...]:
        """Names of the distillation terms this loss reports."""
        feat = FEATURE_TERMS if self.features is not None else ()
        return feat + (self.response.names if self.response is not None else ())

    def distill_terms(
        self,
        outs_s: Sequence[torch.Tensor],
        outs_t: Sequence[torch.Tensor],
        feats_s: Sequence[torch.Tensor],
        feats_t: Sequence[torch.Tensor],
        targets: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Unweighted distillation terms (with gradient)."""
        terms: dict[str, torch.Tensor] = {}
        if self.features is not None:
            terms.update(self.features(feats_s, feats_t, targets))
        if self.response is not None:
            terms.update(self.response(outs_s, outs_t, targets))
        return terms

    def forward(
        self,
        outs_s: Sequence[torch.Tensor],
        outs_t: Sequence[torch.Tensor],
        feats_s: Sequence[torch.Tensor],
        feats_t: Sequence[torch.Tensor],
        targets: torch.Tensor,
        weights: dict[str, float] | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(total, parts)``: eq. 17 with adaptive ``weights``; ``parts`` unweighted, detached."""
        w = weights or {}
        outs_s = [o.float() for o in outs_s]
        total, parts = self.criterion(outs_s, targets, w)
        for k, v in self.distill_terms(outs_s, outs_t, feats_s, feats_t, targets).items():
            total = total + self.cfg.gains[k] * w.get(k, 1.0) * v
            parts[k] = v.detach()
        return total, parts
