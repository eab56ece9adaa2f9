"""EVS (Efficient Video Sampling, vLLM ``--video-pruning-rate``): prune the tokens that repeat the
same spatial position of the previous frame.

For ``hidden [T*H*W, C]`` in raster order, token ``(t, y, x)`` with ``t >= 1`` scores
``1 - cos(h[t, y, x], h[t-1, y, x])``; every token of the first frame scores 255 (always kept).
All ``N`` scores are ranked in descending order, ties by the lower raster index (a stable sort),
and the first ``max(H*W, int(N * (1 - q)))`` are kept for pruning rate ``q`` (vLLM's float
arithmetic: ``1 - 0.7 = 0.30000000000000004``). Kept tokens keep their own features; a dropped
token is counted with the token at its position in the previous frame (followed back to a kept
one; the first frame is complete, so every chain ends). Positions are the family's rule: vLLM
gives the survivors their original M-RoPE ids on Qwen; LLaVA renumbers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lmms_sttm.merging.groups import Grid, from_keep
from lmms_sttm.merging.reduction import Reduction

FIRST_FRAME_SCORE = 255.0


def evs_count(tokens_per_frame: int, frames: int, rate: float) -> int:
    """Tokens EVS keeps: ``max(H*W, int(T*H*W * (1 - rate)))``."""
    return max(tokens_per_frame, int(tokens_per_frame * frames * (1 - rate)))


def evs_scores(hidden: torch.Tensor, grid: Grid) -> torch.Tensor:
    """``[N]`` dissimilarity to the same position one frame earlier (255 on frame 0), computed in
    the input's dtype as vLLM does (bfloat16 scores tie often; ties go to the lower index)."""
    t, h, w = grid
    x = hidden.reshape(t, h * w, -1)
    dis = 1 - F.cosine_similarity(x[1:], x[:-1], dim=-1)  # [T-1, H*W]
    first = torch.full((1, h * w), FIRST_FRAME_SCORE, dtype=dis.dtype, device=hidden.device)
    return torch.cat([first, dis], dim=0).reshape(-1)


def evs_keep(
    hidden: torch.Tensor, grid: Grid, rate: float | None = None, count: int | None = None
) -> torch.Tensor:
    """``[N]`` bool keep mask for pruning rate ``rate`` (or an explicit ``count``)."""
    t, h, w = grid
    if count is None:
        count = evs_count(h * w, t, rate)
    order = torch.argsort(evs_scores(hidden, grid), descending=True, stable=True)
    keep = torch.zeros(t * h * w, dtype=torch.bool, device=hidden.device)
    keep[order[:count]] = True
    return keep


def evs_plan(hidden: torch.Tensor, grid: Grid, keep: torch.Tensor) -> Reduction:
    """Pruning plan of ``keep``: a dropped token is attributed to its position in the previous frame."""
    _, h, w = grid
    idx = torch.arange(hidden.shape[0], device=hidden.device)
    parent = torch.where(idx >= h * w, idx - h * w, idx)
    return from_keep(hidden, keep, parent, grid)


class EvsReducer:
    """Engine reducer: EVS at pruning rate ``rate`` (vLLM's ``--video-pruning-rate``, in [0, 1))."""

    needs_attention = False

    def __init__(self, rate: float) -> None:
        if not 0 <= rate < 1:
            raise ValueError(f"EVS pruning rate must be in [0, 1), got {rate}")
        self.rate = float(rate)

    def __call__(self, hidden: torch.Tensor, grid: Grid) -> Reduction:
        return evs_plan(hidden, grid, evs_keep(hidden, grid, self.rate))

    def __repr__(self) -> str:
        return f"EvsReducer(rate={self.rate})"
