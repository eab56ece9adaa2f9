"""FastV: at layer K keep the video tokens the last prompt token attends to most at layer K-1.

``scores [N]`` (mean over heads of the last prompt token's attention at layer K-1, computed by the
engine from that layer's projections) rank the tokens; the top ``round(keep * N)`` are kept in
their original order with their own features, the rest dropped for all later layers. A dropped
token is attributed to the previous kept token (bookkeeping only).

Authors' settings (STTM port): evict ratio 0.50 / 0.70, i.e. keep 0.50 / 0.30, K = 2. The port
keeps survivors' original positions; in this engine LLaVA models re-assign positions (as for every
method) and Qwen2-VL keeps the survivors' M-RoPE ids.
"""

from __future__ import annotations

import torch

from lmms_sttm.merging.groups import Grid, from_keep, previous_kept_parent
from lmms_sttm.merging.reduction import Reduction


def top_scores_keep(scores: torch.Tensor, count: int) -> torch.Tensor:
    """``[N]`` bool mask of the ``count`` highest scores (ties: lower index first)."""
    n = scores.shape[0]
    if not 1 <= count <= n:
        raise ValueError(f"keep count {count} outside [1, {n}]")
    order = torch.argsort(scores.float(), descending=True, stable=True)
    keep = torch.zeros(n, dtype=torch.bool, device=scores.device)
    keep[order[:count]] = True
    return keep


def fastv_prune(hidden: torch.Tensor, grid: Grid, scores: torch.Tensor, keep: float) -> Reduction:
    """``hidden [N, C]``, ``scores [N]`` -> ``Reduction`` keeping ``round(keep * N)`` top-scored tokens."""
    n = hidden.shape[0]
    if scores.shape != (n,):
        raise ValueError(f"FastV scores {tuple(scores.shape)} do not match {n} video tokens")
    mask = top_scores_keep(scores.to(hidden.device), max(1, min(n, round(keep * n))))
    return from_keep(hidden, mask, previous_kept_parent(mask), grid)


class FastVReducer:
    """Query-aware engine reducer: FastV keeping ``keep`` of the video tokens (authors: 0.50 / 0.30)."""

    needs_attention = True

    def __init__(self, keep: float) -> None:
        if not 0 < keep <= 1:
            raise ValueError(f"FastV keep fraction must be in (0, 1], got {keep}")
        self.keep = float(keep)

    def __call__(self, hidden: torch.Tensor, grid: Grid, context=None) -> Reduction:
        if context is None:
            raise ValueError("FastV needs the last prompt token's attention (run it through the engine)")
        return fastv_prune(hidden, grid, context.scores, self.keep)

    def __repr__(self) -> str:
        return f"FastVReducer(keep={self.keep})"
