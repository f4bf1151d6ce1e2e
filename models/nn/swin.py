"""Block-S: Swin-transformer blocks (window attention + relative position bias, shifted
windows) followed by a conv, as used at the deep backbone levels.

Feature maps whose size is not a multiple of the window are zero-padded; padded tokens
are masked out of attention, so results do not depend on the padding.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.nn.conv import Conv


class WindowAttention(nn.Module):
    """Multi-head self attention inside ``ws x ws`` windows with relative position bias."""

    def __init__(self, dim: int, ws: int, heads: int) -> None:
        super().__init__()
        self.ws, self.heads = ws, heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.bias_table = nn.Parameter(torch.zeros((2 * ws - 1) ** 2, heads))
        nn.init.trunc_normal_(self.bias_table, std=0.02)
        coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij"))
        coords = coords.flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (ws - 1)
        self.register_buffer("rel_index", rel[..., 0] * (2 * ws - 1) + rel[..., 1], False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """``x``: [B*nW, N, C] window tokens; ``mask``: [nW, N, N] additive or None."""
        n = int(x.shape[1])  # static; batch stays dynamic (-1)
        qkv = self.qkv(x)
        hd = int(qkv.shape[-1]) // (3 * self.heads)  # head dim from qkv: the token dim may
        # be narrower (a channel-pruned model keeps the heads and prunes the token dim)
        qkv = qkv.reshape(-1, n, 3, self.heads, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.bias_table[self.rel_index.reshape(-1)].reshape(n, n, -1).permute(2, 0, 1)
        attn = attn + bias.unsqueeze(0)
        if mask is not None:
            nw = int(mask.shape[0])
            attn = attn.reshape(-1, nw, self.heads, n, n) + mask[None, :, None]
            attn = attn.reshape(-1, self.heads, n, n)
        attn = attn.softmax(-1)
        out = (attn @ v).transpose(1, 2).reshape(-1, n, self.heads * hd)
        return self.proj(out)


def _window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    h, w, c = int(x.shape[1]), int(x.shape[2]), int(x.shape[3])
    x = x.reshape(-1, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def _window_reverse(x: torch.Tensor, ws: int, h: int, w: int) -> torch.Tensor:
    c = int(x.shape[-1])
    x = x.reshape(-1, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


def _region_ids(hp: int, wp: int, h: int, w: int, ws: int, shift: int) -> np.ndarray:
    """Integer id per padded-grid cell: shift regions, and -1 for padding (numpy, so the
    mask is a constant in exported graphs)."""
    ids = np.zeros((hp, wp), dtype=np.int64)
    if shift:
        cuts_h = (slice(0, hp - ws), slice(hp - ws, hp - shift), slice(hp - shift, hp))
        cuts_w = (slice(0, wp - ws), slice(wp - ws, wp - shift), slice(wp - shift, wp))
        cnt = 0
        for sh in cuts_h:
            for sw in cuts_w:
                ids[sh, sw] = cnt
                cnt += 1
    pad = np.zeros((hp, wp), dtype=bool)
    pad[h:, :] = True
    pad[:, w:] = True
    if shift:
        pad = np.roll(pad, shift=(-shift, -shift), axis=(0, 1))
    ids[pad] = -1
    return ids


def _attention_mask(hp: int, wp: int, h: int, w: int, ws: int, shift: int) -> np.ndarray:
    """Additive mask ``[nW, N, N]``: -100 between tokens of different regions or to padding."""
    ids = _region_ids(hp, wp, h, w, ws, shift)
    win = ids.reshape(hp // ws, ws, wp // ws, ws).transpose(0, 2, 1, 3).reshape(-1, ws * ws)
    bad = (win[:, :, None] != win[:, None, :]) | (win == -1)[:, None, :]
    # a padded query row would be fully masked; let it attend to itself
    eye = np.eye(ws * ws, dtype=bool)[None]
    bad &= ~(eye & (win == -1)[:, :, None])
    return np.where(bad, -100.0, 0.0).astype(np.float32)


class SwinBlock(nn.Module):
    """LN -> (shifted) window attention -> residual; LN -> MLP -> residual. Tokens [B,H,W,C]."""

    def __init__(self, dim: int, heads: int, ws: int = 7, shift: int = 0, mlp_ratio: float = 2.0):
        super().__init__()
        self.ws, self.shift = ws, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, ws, heads)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self._masks: dict[tuple[int, int, int, str], torch.Tensor | None] = {}

    def _mask(
        self, h: int, w: int, hp: int, wp: int, shift: int, device: torch.device
    ) -> torch.Tensor | None:
        key = (h, w, shift, str(device))
        if key not in self._masks:
            if not shift and hp == h and wp == w:
                self._masks[key] = None
            else:
                m = _attention_mask(hp, wp, h, w, self.ws, shift)
                self._masks[key] = torch.from_numpy(m).to(device)
        return self._masks[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = int(x.shape[1]), int(x.shape[2])
        ws = self.ws
        ph, pw = (ws - h % ws) % ws, (ws - w % ws) % ws
        y = self.norm1(x)
        if ph or pw:
            y = F.pad(y, (0, 0, 0, pw, 0, ph))
        hp, wp = h + ph, w + pw
        shift = self.shift if min(h, w) > ws else 0  # one window: shifting is pointless
        if shift:
            y = torch.roll(y, shifts=(-shift, -shift), dims=(1, 2))
        mask = self._mask(h, w, hp, wp, shift, x.device)
        y = _window_reverse(self.attn(_window_partition(y, ws), mask), ws, hp, wp)
        if shift:
            y = torch.roll(y, shifts=(shift, shift), dims=(1, 2))
        if ph or pw:
            y = y[:, :h, :w, :]
        x = x + y
        return x + self.mlp(self.norm2(x))


class BlockS(nn.Module):
    """Block-S: strided conv (patch merging) -> ``depth`` Swin blocks (alternating shift)
    -> 1x1 conv. Input/output are NCHW feature maps."""

    def __init__(self, c1: int, c2: int, depth: int = 2, heads: int = 4, ws: int = 7) -> None:
        super().__init__()
        self.down = Conv(c1, c2, 3, 2)
        self.blocks = nn.ModuleList(
            SwinBlock(c2, heads, ws, shift=(ws // 2) if i % 2 else 0) for i in range(depth)
        )
        self.conv = Conv(c2, c2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.down(x)
        y = x.permute(0, 2, 3, 1)
        for blk in self.blocks:
            y = blk(y)
        return self.conv(y.permute(0, 3, 1, 2).contiguous())
