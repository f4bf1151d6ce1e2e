"""Torch mirror of models/processing/decode.py (used by the loss): flatten per-level
outputs in contract order and decode boxes to xyxy input pixels."""

from __future__ import annotations

from collections.abc import Sequence

import torch

MAX_EXP = 10.0  # same clamp as the numpy decoder


def flatten_outputs(outs: Sequence[torch.Tensor]) -> torch.Tensor:
    """``[B, na, H, W, 5+C]`` per level → ``[B, A, 5+C]`` (levels, then (anchor, y, x))."""
    rows = [int(o.shape[1] * o.shape[2] * o.shape[3]) for o in outs]  # static in ONNX
    return torch.cat(
        [o.reshape(-1, r, int(o.shape[-1])) for o, r in zip(outs, rows, strict=True)], 1
    )


def make_grid(
    outs: Sequence[torch.Tensor],
    strides: Sequence[int],
    anchors: Sequence[Sequence[Sequence[float]]] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Per-row grid cell ``[A,2]`` (x, y), stride ``[A]`` and anchor ``[A,2]`` (or None)."""
    cells, strd, anc = [], [], []
    for lvl, (o, s) in enumerate(zip(outs, strides, strict=True)):
        na, h, w = o.shape[1:4]
        ys, xs = torch.meshgrid(
            torch.arange(h, device=o.device), torch.arange(w, device=o.device), indexing="ij"
        )
        xy = torch.stack((xs.reshape(-1), ys.reshape(-1)), 1).float().repeat(na, 1)
        cells.append(xy)
        strd.append(torch.full((na * h * w,), float(s), device=o.device))
        if anchors is not None:
            a = torch.tensor(anchors[lvl], device=o.device, dtype=torch.float32)
            anc.append(a.repeat_interleave(h * w, 0))
    return torch.cat(cells), torch.cat(strd), (torch.cat(anc) if anchors is not None else None)


def decode_boxes(
    raw: torch.Tensor,
    cells: torch.Tensor,
    strides: torch.Tensor,
    head: str,
    anchors: torch.Tensor | None = None,
) -> torch.Tensor:
    """Decode ``raw[..., :4]`` rows to xyxy input px (docs/contracts.md box decoding)."""
    t = raw[..., :4].float()
    s = strides[..., None]
    if head == "anchor_free":
        cxy = (t[..., :2] + cells) * s
        wh = torch.exp(t[..., 2:4].clamp(max=MAX_EXP)) * s
    else:
        assert anchors is not None
        st = t.sigmoid()
        cxy = (st[..., :2] * 2.0 - 0.5 + cells) * s
        wh = (st[..., 2:4] * 2.0) ** 2 * anchors
    return torch.cat((cxy - wh / 2, cxy + wh / 2), -1)
