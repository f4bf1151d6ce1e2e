"""YOLOv5-style anchor assignment for the anchor-based head (the papers' choice).

A GT matches an anchor of a level when both width and height ratios to the anchor are
within ``anchor_t``; it is assigned to its own grid cell and the two nearest neighbour
cells (the ``2*sigmoid - 0.5`` centre decoding can reach them).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LevelTargets:
    """Matches on one level: indices ``b, a, gy, gx``, ``boxes [K,4]`` xyxy px, ``labels [K]``."""

    b: torch.Tensor
    a: torch.Tensor
    gy: torch.Tensor
    gx: torch.Tensor
    boxes: torch.Tensor
    labels: torch.Tensor


class AnchorAssigner:
    """Ratio-matching assigner with neighbour-cell expansion."""

    def __init__(self, anchor_t: float = 4.0, bias: float = 0.5) -> None:
        self.anchor_t, self.bias = anchor_t, bias

    @torch.no_grad()
    def __call__(
        self,
        targets: torch.Tensor,
        anchors: torch.Tensor,
        strides: tuple[int, ...],
        grids: list[tuple[int, int]],
    ) -> list[LevelTargets]:
        """``targets [M,6]`` (batch_idx, cls, x1, y1, x2, y2 input px), ``anchors [L,na,2]``
        px, ``grids`` ``(H, W)`` per level."""
        out: list[LevelTargets] = []
        dev = targets.device
        cxy = (targets[:, 2:4] + targets[:, 4:6]) / 2
        wh = targets[:, 4:6] - targets[:, 2:4]
        off = torch.tensor([[0, 0], [1, 0], [0, 1], [-1, 0], [0, -1]], device=dev).float()
        for lvl, s in enumerate(strides):
            h, w = grids[lvl]
            r = wh[None] / anchors[lvl][:, None]  # [na,M,2]
            ok = torch.max(r, 1 / r).amax(-1) < self.anchor_t  # [na,M]
            ai, ti = ok.nonzero(as_tuple=True)
            g = cxy[ti] / s  # grid coords
            gi = torch.tensor([w, h], device=dev).float() - g
            f = g % 1
            j, k = ((f < self.bias) & (g > 1)).T
            lft, mm = ((gi % 1 < self.bias) & (gi > 1)).T
            sel = torch.stack((torch.ones_like(j), j, k, lft, mm))  # [5,K]
            g5 = (g[None] - off[:, None] * self.bias)[sel]
            ai5 = ai[None].expand(5, -1)[sel]
            ti5 = ti[None].expand(5, -1)[sel]
            gx = g5[:, 0].long().clamp(0, w - 1)
            gy = g5[:, 1].long().clamp(0, h - 1)
            out.append(
                LevelTargets(
                    b=targets[ti5, 0].long(),
                    a=ai5,
                    gy=gy,
                    gx=gx,
                    boxes=targets[ti5, 2:6],
                    labels=targets[ti5, 1].long(),
                )
            )
        return out
