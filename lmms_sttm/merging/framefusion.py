"""FrameFusion, single-layer version (``framefusion=single_layer``): merge same-position tokens of
adjacent frames, then prune by the last prompt token's attention to a compute budget, both at the
input of one layer k. The default is the authors' multi-layer computation
(``merging/framefusion_authors.py``).

1. Merge: token ``(t, p)`` joins token ``(t-1, p)`` when their cosine is >= ``sim`` (0.6); chains
   run back to the earliest frame (union toward the earliest token). This variant merges only
   when at least ``min_share`` (10%) of the tokens qualify, and never below the budget (only the
   most similar ``N - M`` links are made); the authors instead merge every qualifying link and use
   the 10% share only to stop merging in later layers. A group's feature is the plain mean of its
   members, its score the mean of its members' scores.
2. Prune: keep the ``M`` highest-scored groups, where the compute "cost" ``c`` (a fraction of the
   full model's token-layers) fixes ``M``: layers ``< k`` see ``N`` tokens, layers ``>= k`` see
   ``M``, so ``c * L * N = k * N + (L - k) * M``. With an explicit ``keep`` instead (exact budgets),
   ``M = round(keep * N)``.

Deviations from the authors' code (HYUNJS/STTM ``llava/model/framefusion/main.py``): they merge on
the input embeddings and again after each layer's attention until under 10% qualify, and when the
merges reach the budget ``int((1 - cost) * N)`` they stop there and never prune; otherwise they
prune once, by the last query row, with the cost left from their sparsity bookkeeping. Here both
happen at the input of layer k with the count ``c * L * N = k * N + (L - k) * M``. Survivors keep
their original position ids in both variants. Authors' settings: cost 0.50 / 0.30.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lmms_sttm.merging.fastv import top_scores_keep
from lmms_sttm.merging.groups import Grid, from_groups, resolve_roots
from lmms_sttm.merging.reduction import Reduction


def temporal_parent(
    hidden: torch.Tensor, grid: Grid, sim: float, min_share: float, max_merges: int
) -> torch.Tensor:
    """``[N]`` parent: the same position one frame earlier when similar enough, else the token itself.

    Each link removes one group (links form a forest), so at most ``max_merges`` links are made: the
    most similar ones.
    """
    t, h, w = grid
    n = t * h * w
    idx = torch.arange(n, device=hidden.device)
    if t < 2:
        return idx
    x = hidden.reshape(t, h * w, -1).float()
    cos = F.cosine_similarity(x[1:], x[:-1], dim=-1).reshape(-1)  # [(T-1)*HW]
    join = cos >= sim
    if float(join.float().sum()) < min_share * n:
        return idx
    if int(join.sum()) > max_merges:
        join = (
            top_scores_keep(torch.where(join, cos, torch.full_like(cos, -2.0)), max_merges)
            if max_merges
            else join & False
        )
    later = idx[h * w :]
    parent = idx.clone()
    parent[later] = torch.where(join, later - h * w, later)
    return parent


def compute_budget_count(n: int, cost: float, layer: int, num_layers: int) -> int:
    """Tokens ``M`` kept from layer ``k`` on so that the token-layer cost is ``cost`` of the full model."""
    if layer >= num_layers:
        raise ValueError(f"layer {layer} outside a {num_layers}-layer model")
    m = (cost * num_layers - layer) / (num_layers - layer) * n
    return max(1, min(n, round(m)))


def framefusion_reduce(
    hidden: torch.Tensor,
    grid: Grid,
    scores: torch.Tensor,
    count: int,
    sim: float = 0.6,
    min_share: float = 0.1,
) -> Reduction:
    """``hidden [N, C]``, ``scores [N]`` -> ``Reduction`` with at most ``count`` tokens (merge, then prune)."""
    n = hidden.shape[0]
    count = max(1, min(count, n))
    root = resolve_roots(temporal_parent(hidden, grid, sim, min_share, n - count))
    merged = from_groups(hidden, root, grid)  # groups in raster order of their earliest token
    group_scores = (
        torch.zeros(merged.num_kept, device=hidden.device).index_add_(
            0, merged.token_map, scores.float().to(hidden.device)
        )
        / merged.num_patches.float()
    )
    keep = top_scores_keep(group_scores, count)
    # dropped groups' tokens are attributed to the previous kept group (bookkeeping only)
    kept_idx = torch.nonzero(keep).squeeze(1)
    prev = torch.searchsorted(kept_idx, torch.arange(merged.num_kept, device=hidden.device), right=True) - 1
    new_of_group = torch.where(keep, torch.cumsum(keep, 0) - 1, prev.clamp_min(0))
    token_map = new_of_group.index_select(0, merged.token_map)
    return Reduction(
        features=merged.features.index_select(0, kept_idx),
        num_patches=torch.bincount(token_map, minlength=kept_idx.numel()),
        tlbr=merged.tlbr.index_select(0, kept_idx),
        token_map=token_map,
        rep_index=merged.rep_index.index_select(0, kept_idx),
        grid=merged.grid,
        carry=lambda v: merged.carried(v).index_select(0, kept_idx.to(v.device)),
    )


class FrameFusionReducer:
    """Query-aware engine reducer: FrameFusion at compute ``cost`` (authors: 0.50 / 0.30) or ``keep``."""

    needs_attention = True

    def __init__(self, cost: float | None = None, keep: float | None = None, sim: float = 0.6) -> None:
        if (cost is None) == (keep is None):
            raise ValueError("FrameFusion needs exactly one of cost= or keep=")
        for name, v in (("cost", cost), ("keep", keep)):
            if v is not None and not 0 < v <= 1:
                raise ValueError(f"FrameFusion {name} must be in (0, 1], got {v}")
        self.cost, self.keep, self.sim = cost, keep, float(sim)

    def __call__(self, hidden: torch.Tensor, grid: Grid, context=None) -> Reduction:
        if context is None:
            raise ValueError(
                "FrameFusion needs the last prompt token's attention (run it through the engine)"
            )
        n = hidden.shape[0]
        if self.keep is not None:
            count = max(1, min(n, round(self.keep * n)))
        else:
            count = compute_budget_count(n, self.cost, context.layer, context.num_layers)
        return framefusion_reduce(hidden, grid, context.scores, count, self.sim)

    def __repr__(self) -> str:
        return f"FrameFusionReducer(cost={self.cost}, keep={self.keep}, sim={self.sim})"
