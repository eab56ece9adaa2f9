"""FastV: at layer K keep the video tokens the last prompt token attends to most at layer K-1.

``scores [N]`` (mean over heads of the last prompt token's attention at layer K-1, computed by the
engine from that layer's projections) rank the tokens; the top ``round(N * (1 - r))`` for evict
ratio ``r`` (the authors' arithmetic: ``1 - 0.7 = 0.30000000000000004``, Python's ``round``, i.e.
half to even), or ``round(keep * N)`` for exact budgets, are kept in their original order with
their own features, the rest dropped for all later layers. A dropped token is attributed to the
previous kept token (bookkeeping only).

Authors' code: the ``elif layer_idx == FASTV_k`` block of
``llava/model/framefusion/models/qwen2/modeling_qwen2_baseline.py`` (``topk`` of the eager
attention row, then the kept indices sorted). Settings (STTM port): evict ratio 0.50 / 0.70, K = 2.
The port keeps survivors' original position ids and RoPE (the engine's position rule per method).

Tie rule: equal scores are ranked lower index first. The authors' ``topk`` picks among tokens tied
at the cut in an implementation-defined way (CPU and CUDA differ), and their scores are the bf16
model's softmax and head mean, where exact ties are common; on scores without a tie at the cut the
kept set is the authors'.
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


def fastv_count(n: int, keep: float | None = None, evict: float | None = None) -> int:
    """Tokens kept of ``n``: ``round(n * (1 - evict))`` (authors) or ``round(keep * n)``, in ``[1, n]``."""
    if (keep is None) == (evict is None):
        raise ValueError("FastV needs exactly one of keep= or evict=")
    count = round(n * (1 - evict)) if evict is not None else round(keep * n)
    return max(1, min(n, count))


def fastv_prune(
    hidden: torch.Tensor,
    grid: Grid,
    scores: torch.Tensor,
    keep: float | None = None,
    *,
    evict: float | None = None,
) -> Reduction:
    """``hidden [N, C]``, ``scores [N]`` -> ``Reduction`` keeping the ``fastv_count`` top-scored tokens."""
    n = hidden.shape[0]
    if scores.shape != (n,):
        raise ValueError(f"FastV scores {tuple(scores.shape)} do not match {n} video tokens")
    mask = top_scores_keep(scores.to(hidden.device), fastv_count(n, keep, evict))
    return from_keep(hidden, mask, previous_kept_parent(mask), grid)


class FastVReducer:
    """Query-aware engine reducer: FastV with the authors' evict ratio ``evict`` (0.50 / 0.70) or, for
    exact budgets, a keep fraction ``keep``."""

    needs_attention = True

    def __init__(self, keep: float | None = None, *, evict: float | None = None) -> None:
        if (keep is None) == (evict is None):
            raise ValueError("FastV needs exactly one of keep= or evict=")
        if keep is not None and not 0 < keep <= 1:
            raise ValueError(f"FastV keep fraction must be in (0, 1], got {keep}")
        if evict is not None and not 0 <= evict < 1:
            raise ValueError(f"FastV evict ratio must be in [0, 1), got {evict}")
        self.keep = None if keep is None else float(keep)
        self.evict = None if evict is None else float(evict)

    def __call__(self, hidden: torch.Tensor, grid: Grid, context=None) -> Reduction:
        if context is None:
            raise ValueError("FastV needs the last prompt token's attention (run it through the engine)")
        return fastv_prune(hidden, grid, context.scores, self.keep, evict=self.evict)

    def __repr__(self) -> str:
        return f"FastVReducer(keep={self.keep}, evict={self.evict})"
