"""Attention-guided feature distillation on the neck levels (paper eq. 5, 11-13; FGD).

Per level, with ``F_T`` the teacher feature, ``f(F_S)`` the student feature mapped to the
teacher's channels by a 1x1 adapter, ``A_S``/``A_C`` the teacher's spatial/channel
attention masks and the GT masks of :mod:`models.distill.masks` (losses are sums over
``C, H, W``, divided by the batch size, as in the FGD reference):

* ``L_fg = sum fg_scale * A_S^T * A_C^T * (F_T - f(F_S))^2``   (eq. 11, foreground part)
* ``L_bg = sum bg_scale * A_S^T * A_C^T * (F_T - f(F_S))^2``   (eq. 11, background part)
* ``L_A  = sum SmoothL1(A_S^S, A_S^T) + sum SmoothL1(A_C^S, A_C^T)``   (eq. 12)
* ``L_G  = sum (G_T(F_T) - G_S(f(F_S)))^2``                   (eq. 13)

``G`` is a GcBlock-style global context module (attention pooling → bottleneck MLP with
LayerNorm → broadcast add), one for the teacher and one for the student feature, both
trained with the student; their last conv starts at zero so ``G`` starts as the identity.
The adapters and both ``G`` belong to the distiller, never to the teacher.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from models.distill.attention import attention_masks
from models.distill.masks import FgBgMasks, fg_bg_masks
from models.losses import pad_targets

FEATURE_TERMS = ("fg", "bg", "attn", "global")


class GlobalContext(nn.Module):
    """GcBlock: ``x + MLP(sum_hw softmax(conv(x)) * x)`` (context added to every cell)."""

    def __init__(self, c: int, ratio: float = 0.5) -> None:
        super().__init__()
        hidden = max(int(c * ratio), 1)
        self.conv_mask = nn.Conv2d(c, 1, 1, bias=False)
        nn.init.kaiming_normal_(self.conv_mask.weight, mode="fan_in", nonlinearity="relu")
        last = nn.Conv2d(hidden, c, 1, bias=False)
        nn.init.zeros_(last.weight)  # G starts as the identity
        self.channel_add = nn.Sequential(
            nn.Conv2d(c, hidden, 1), nn.LayerNorm([hidden, 1, 1]), nn.ReLU(inplace=True), last
        )

    def context(self, x: torch.Tensor) -> torch.Tensor:
        """Attention-pooled context ``[B, C, 1, 1]``."""
        b, c, h, w = x.shape
        attn = torch.softmax(self.conv_mask(x).reshape(b, 1, h * w), -1)  # [B,1,HW]
        return torch.bmm(x.reshape(b, c, h * w), attn.transpose(1, 2)).reshape(b, c, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = x + self.channel_add(self.context(x))
        return out


class LevelDistiller(nn.Module):
    """Feature distillation of one neck level: adapter, two context modules, four losses."""

    def __init__(self, c_student: int, c_teacher: int, temperature: float = 0.5) -> None:
        super().__init__()
        self.temperature = temperature
        self.adapter: nn.Module = (
            nn.Conv2d(c_student, c_teacher, 1) if c_student != c_teacher else nn.Identity()
        )
        self.gc_student = GlobalContext(c_teacher)
        self.gc_teacher = GlobalContext(c_teacher)

    def forward(
        self, f_s: torch.Tensor, f_t: torch.Tensor, masks: FgBgMasks
    ) -> dict[str, torch.Tensor]:
        """Unweighted ``fg``, ``bg``, ``attn``, ``global`` losses of this level."""
        f_t = f_t.detach().float()
        f_s = self.adapter(f_s.float())
        n = f_s.shape[0]
        with torch.no_grad():
            s_t, c_t = attention_masks(f_t, self.temperature)
        s_s, c_s = attention_masks(f_s, self.temperature)
        sq = (f_t - f_s).pow(2) * (s_t[:, None] * c_t[..., None, None])
        fg = (sq * masks.fg_scale[:, None]).sum() / n
        bg = (sq * masks.bg_scale[:, None]).sum() / n
        attn = F.smooth_l1_loss(s_s, s_t, reduction="sum") / n
        attn = attn + F.smooth_l1_loss(c_s, c_t, reduction="sum") / n
        glob = (self.gc_teacher(f_t) - self.gc_student(f_s)).pow(2).sum() / n
        return {"fg": fg, "bg": bg, "attn": attn, "global": glob}


class FeatureDistiller(nn.Module):
    """Feature distillation over all neck levels; losses summed over levels."""

    def __init__(
        self,
        student_channels: Sequence[int],
        teacher_channels: Sequence[int],
        strides: Sequence[int],
        temperature: float = 0.5,
    ) -> None:
        super().__init__()
        if not len(student_channels) == len(teacher_channels) == len(strides):
            raise ValueError("student, teacher and strides must have one entry per level")
        self.strides = tuple(strides)
        self.levels = nn.ModuleList(
            LevelDistiller(cs, ct, temperature)
            for cs, ct in zip(student_channels, teacher_channels, strict=True)
        )

    def forward(
        self,
        feats_s: Sequence[torch.Tensor],
        feats_t: Sequence[torch.Tensor],
        targets: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Per-term losses for student/teacher neck features and collate ``targets [M, 6]``."""
        out = dict.fromkeys(FEATURE_TERMS, feats_s[0].new_zeros((), dtype=torch.float32))
        _, boxes, valid = pad_targets(targets, feats_t[0].shape[0])
        for lvl, f_s, f_t, s in zip(self.levels, feats_s, feats_t, self.strides, strict=True):
            if f_s.shape[-2:] != f_t.shape[-2:]:
                raise ValueError(
                    f"stride {s}: student {tuple(f_s.shape)} vs teacher {tuple(f_t.shape)}"
                )
            masks = fg_bg_masks(boxes, valid, (f_t.shape[-2], f_t.shape[-1]), s)
            for k, v in lvl(f_s, f_t, masks).items():
                out[k] = out[k] + v
        return out
