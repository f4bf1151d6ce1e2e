"""Foreground/background masks from ground-truth boxes on a feature grid (paper eq. 6-8).

For a feature map of ``H x W`` cells at ``stride`` (input pixels per cell), a GT box covers
every cell it overlaps: columns ``floor(x1 / s) .. ceil(x2 / s) - 1`` (at least one cell).

* ``fg``       binary mask (eq. 6): 1 in any box, 0 elsewhere.
* ``fg_scale`` scale mask inside boxes (eq. 7): ``1 / (h * w)`` with ``h, w`` the box size in
  cells; where boxes overlap the smallest box wins (eq. 8: the largest ``1 / (h * w)``).
* ``bg_scale`` scale mask outside boxes (eq. 7): ``1 / N_bg`` with ``N_bg`` the number of
  background cells of that image (all zeros when the image has none).

So per image ``fg_scale`` sums to the number of boxes when they do not overlap (each box
is averaged over its own cells) and ``bg_scale`` sums to 1: losses weighted by them are
per-box means plus one background mean, independent of the feature-map size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from models.losses import pad_targets


@dataclass
class FgBgMasks:
    """Masks of one feature level, each ``[B, H, W]`` float."""

    fg: torch.Tensor
    fg_scale: torch.Tensor
    bg_scale: torch.Tensor

    @property
    def bg(self) -> torch.Tensor:
        """Binary background mask ``1 - fg``."""
        return 1.0 - self.fg


def box_cells(boxes: torch.Tensor, stride: float, h: int, w: int) -> torch.Tensor:
    """xyxy input-pixel boxes ``[..., 4]`` → cell ranges ``[..., 4]`` (x0, y0, x1, y1), end
    exclusive, clipped to the grid, at least one cell wide and high."""
    g = boxes.float() / stride
    x0 = g[..., 0].floor().clamp(0, w - 1)
    y0 = g[..., 1].floor().clamp(0, h - 1)
    x1 = torch.maximum(g[..., 2].ceil().clamp(max=w), x0 + 1)
    y1 = torch.maximum(g[..., 3].ceil().clamp(max=h), y0 + 1)
    return torch.stack((x0, y0, x1, y1), -1)


def fg_bg_masks(
    boxes: torch.Tensor, valid: torch.Tensor, size: tuple[int, int], stride: float
) -> FgBgMasks:
    """Masks for padded boxes ``[B, K, 4]`` (input px, xyxy) with ``valid [B, K]`` on an
    ``(H, W)`` grid of ``stride``."""
    h, w = size
    dev = boxes.device
    b, k = valid.shape
    if k == 0:
        zero = torch.zeros(b, h, w, device=dev)
        return FgBgMasks(zero, zero.clone(), torch.full((b, h, w), 1.0 / (h * w), device=dev))
    c = box_cells(boxes, stride, h, w)  # [B,K,4]
    xs = torch.arange(w, device=dev, dtype=torch.float32)
    ys = torch.arange(h, device=dev, dtype=torch.float32)
    in_x = (xs >= c[..., 0:1]) & (xs < c[..., 2:3])  # [B,K,W]
    in_y = (ys >= c[..., 1:2]) & (ys < c[..., 3:4])  # [B,K,H]
    inside = in_y[..., :, None] & in_x[..., None, :] & valid[..., None, None]  # [B,K,H,W]
    inv_area = 1.0 / ((c[..., 2] - c[..., 0]) * (c[..., 3] - c[..., 1]))  # [B,K]
    fg_scale = torch.where(inside, inv_area[..., None, None], 0.0).amax(1)  # smallest box wins
    fg = (fg_scale > 0).float()
    bg = 1.0 - fg
    bg_scale = bg / bg.sum((1, 2), keepdim=True).clamp(min=1.0)
    return FgBgMasks(fg, fg_scale, bg_scale)


def masks_from_targets(
    targets: torch.Tensor, batch: int, size: tuple[int, int], stride: float
) -> FgBgMasks:
    """Masks from collate targets ``[M, 6]`` rows ``(batch_index, class, x1, y1, x2, y2)``."""
    _, boxes, valid = pad_targets(targets, batch)
    return fg_bg_masks(boxes, valid, size, stride)
