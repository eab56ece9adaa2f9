"""Uniform spatial pooling: every frame's ``H x W`` grid is average-pooled to ``h x w`` bins.

Bins partition the grid (bin of row ``y`` is ``floor(y * h / H)``, same for columns), so every
original token belongs to exactly one bin; a bin's token is the plain mean of its members,
represented by its top-left cell. The bin grid ``h x w`` is chosen so that ``h*w / (H*W)`` is as
close as possible to the requested keep fraction (ties: the aspect ratio closest to ``H : W``).
"""

from __future__ import annotations

import math

import torch

from lmms_sttm.merging.groups import Grid, from_groups
from lmms_sttm.merging.reduction import Reduction


def pool_shape(height: int, width: int, keep: float, tol: float | None = None) -> tuple[int, int]:
    """The ``(h, w)`` bin grid, ``1 <= h <= H``, ``1 <= w <= W``.

    Without ``tol``: the frame's aspect ratio scaled by ``sqrt(keep)`` (rounded; 14x14 -> 10x10 at
    0.5, 8x8 at 0.3). With ``tol``: among grids with ``|h*w/(H*W) - keep| <= tol`` the one closest to
    the frame's aspect ratio, else the closest count not below ``keep`` (an exact-budget caller trims).
    """
    if not 0 < keep <= 1:
        raise ValueError(f"pool keep fraction must be in (0, 1], got {keep}")
    if tol is None:
        scale = math.sqrt(keep)
        return max(1, min(height, round(height * scale))), max(1, min(width, round(width * scale)))
    total, aspect = height * width, height / width
    best = None
    for h in range(1, height + 1):  # scalar search over at most H*W candidate shapes
        for w in range(1, width + 1):
            off = abs(h * w / total - keep)
            key = (off > tol, abs(math.log((h / w) / aspect)) if off <= tol else (h * w < keep * total, off))
            if best is None or key < best[0]:
                best = (key, (h, w))
    return best[1]


def pool_video(hidden: torch.Tensor, grid: Grid, keep: float, tol: float | None = None) -> Reduction:
    """``hidden [T*H*W, C]`` -> ``Reduction`` with ``T*h*w`` tokens (``pool_shape(H, W, keep, tol)``)."""
    t, height, width = grid
    h, w = pool_shape(height, width, keep, tol)
    dev = hidden.device
    by = torch.arange(height, device=dev) * h // height  # [H] bin row
    bx = torch.arange(width, device=dev) * w // width  # [W] bin column
    frame = torch.arange(t, device=dev)[:, None, None]
    bins = (frame * (h * w) + by[None, :, None] * w + bx[None, None, :]).reshape(-1)  # [N] in [0, T*h*w)
    # label each bin by its top-left original token so that from_groups' representatives are bins' corners
    n = t * height * width
    corner = torch.full((t * h * w,), n, dtype=torch.long, device=dev)
    corner.scatter_reduce_(0, bins, torch.arange(n, device=dev), reduce="amin")
    labels = corner.index_select(0, bins)
    # rectangle of each bin, stored at every member (from_groups reads the representative's)
    y0 = (torch.arange(h, device=dev) * height + h - 1) // h
    y1 = ((torch.arange(h, device=dev) + 1) * height + h - 1) // h
    x0 = (torch.arange(w, device=dev) * width + w - 1) // w
    x1 = ((torch.arange(w, device=dev) + 1) * width + w - 1) // w
    shape = (t, height, width)
    tt = frame.expand(shape)
    rects = torch.stack(
        [tt, y0[by][None, :, None].expand(shape), x0[bx][None, None, :].expand(shape),
         y1[by][None, :, None].expand(shape), x1[bx][None, None, :].expand(shape)],
        dim=-1,
    ).reshape(n, 5)  # fmt: skip
    return from_groups(hidden, labels, grid, tlbr=rects)


class PoolReducer:
    """Engine reducer for uniform spatial pooling keeping about ``keep`` of the tokens."""

    needs_attention = False

    def __init__(self, keep: float, tol: float | None = None) -> None:
        if not 0 < keep <= 1:
            raise ValueError(f"pool keep fraction must be in (0, 1], got {keep}")
        self.keep = float(keep)
        self.tol = tol

    def __call__(self, hidden: torch.Tensor, grid: Grid) -> Reduction:
        return pool_video(hidden, grid, self.keep, self.tol)

    def __repr__(self) -> str:
        return f"PoolReducer(keep={self.keep}, tol={self.tol})"
