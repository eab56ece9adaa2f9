"""DyCoke stage 1 (temporal token merging, "TTM") as the STTM authors ported it to an LLM layer.

Authors' code: ``token_merging_utils/dycoke_merger.py`` ``dycoke_ttm`` of the STTM repository.
Frames form pairs ``(0, 1), (2, 3), ...``: every odd frame ``f`` is pruned against frame ``f - 1``.
Then frame ``i + 2`` is pruned against frame ``i`` for ``i`` in ``range(0, T - 4, 4)``: frames
``2, 6, 10, ...`` up to ``T - 3`` only, so when ``T`` is divisible by 4 frame ``T - 2`` stays whole
(the authors' loop bound, reproduced; an odd final frame ``T - 1`` also stays whole). Pruning a
frame against a reference keeps its ``k`` tokens with the *lowest* cosine to the same position of
the reference (the rest are dropped, not averaged; ``k = int((1 - p) * H*W)`` for prune ratio ``p``).
A dropped token is attributed to the same position of its reference frame (chains resolved), which
only matters for ``token_map``/``num_patches``; kept features are the tokens' own.

Row order (the order the tokens enter the LLM): ``order="authors"`` lists the frames in order,
whole frames in raster order and a pruned frame's kept tokens in ``topk`` order, i.e. by
increasing cosine to the reference (ties: lower position first; the authors' ``topk`` tie order is
implementation-defined). ``order="raster"``: raster order (``rep_index`` increasing). The authors'
LLaVA patch renumbers positions 0..N'-1 in row order; their Qwen2-VL patch keeps each token's own
M-RoPE id (``position_index`` is None: a pruned token is its own representative).

Authors' settings: ``p = 0.70`` (about 48% kept at T=128) / ``0.925`` (about 31%). Retention
cannot go below the whole frames' share (about 25%); exact budgets below it are reached by the
generic trimmer (``budget.trim_to``). The authors' code fails for ``T <= 4`` (no second pass to
stack); here such videos simply have no second pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lmms_sttm.merging.groups import Grid, from_keep
from lmms_sttm.merging.reduction import Reduction


def reference_frames(num_frames: int, device: torch.device | None = None) -> torch.Tensor:
    """``[T]`` int64: the frame each frame is pruned against, ``-1`` for frames kept whole."""
    f = torch.arange(num_frames, device=device)
    ref = torch.full_like(f, -1)
    ref = torch.where(f % 2 == 1, f - 1, ref)
    ref = torch.where((f % 4 == 2) & (f <= num_frames - 3), f - 2, ref)  # range(0, T - 4, 4) + 2
    return ref


def per_frame_keep(num_frames: int, hw: int, target: int, device=None) -> torch.Tensor:
    """``[T]`` tokens to keep per frame so that the total is ``target`` where possible.

    Whole frames keep ``hw``; the remaining budget is spread evenly over the pruned frames (the
    first ones get one more). If ``target`` is below the whole frames' total, pruned frames keep 0
    (the caller must trim further).
    """
    ref = reference_frames(num_frames, device)
    pruned = ref >= 0
    num_pruned = int(pruned.sum())
    whole = (num_frames - num_pruned) * hw
    left = max(0, min(target - whole, num_pruned * hw))
    base, extra = divmod(left, max(num_pruned, 1))
    order = torch.cumsum(pruned.long(), 0) - 1  # index among pruned frames
    share = base + (order < extra).long()
    return torch.where(pruned, share, torch.full_like(share, hw))


ORDERS = ("authors", "raster")


def reorder(plan: Reduction, order: torch.Tensor) -> Reduction:
    """The same plan with its rows listed as ``order [N']`` (a permutation of the rows)."""
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(order.numel(), device=order.device)
    return Reduction(
        features=plan.features.index_select(0, order),
        num_patches=plan.num_patches.index_select(0, order),
        tlbr=plan.tlbr.index_select(0, order),
        token_map=inverse.index_select(0, plan.token_map),
        rep_index=plan.rep_index.index_select(0, order),
        grid=plan.grid,
        position_index=None if plan.position_index is None else plan.position_index.index_select(0, order),
        carry=None if plan.carry is None else (lambda v: plan.carry(v).index_select(0, order.to(v.device))),
    )


def dycoke_stage1(
    hidden: torch.Tensor, grid: Grid, keep_counts: torch.Tensor, order: str = "authors"
) -> Reduction:
    """Prune ``hidden [T*H*W, C]`` keeping ``keep_counts [T]`` tokens per frame (whole frames: H*W);
    rows in the ``order`` of the module docstring."""
    if order not in ORDERS:
        raise ValueError(f"DyCoke order {order!r} is not one of {list(ORDERS)}")
    t, h, w = grid
    hw = h * w
    dev = hidden.device
    x = hidden.reshape(t, hw, -1)
    ref = reference_frames(t, dev)
    ref_or_self = torch.where(ref >= 0, ref, torch.arange(t, device=dev))
    sim = F.cosine_similarity(x.float(), x.index_select(0, ref_or_self).float(), dim=-1)  # [T, HW]
    rank = torch.argsort(torch.argsort(sim, dim=1, stable=True), dim=1)  # 0 = least similar
    keep = (rank < keep_counts.to(dev)[:, None]) | (ref < 0)[:, None]
    idx = torch.arange(t * hw, device=dev).view(t, hw)
    parent = torch.where(keep, idx, idx.index_select(0, ref_or_self))
    plan = from_keep(hidden, keep.reshape(-1), parent.reshape(-1), grid)
    if order == "raster":
        return plan
    # sort key of every token: frame, then rank by cosine (pruned frames) or position (whole frames)
    within = torch.where((ref >= 0)[:, None], rank, torch.arange(hw, device=dev)[None])
    key = (torch.arange(t, device=dev)[:, None] * hw + within).reshape(-1)
    return reorder(plan, torch.argsort(key.index_select(0, plan.rep_index)))


def prune_ratio_counts(num_frames: int, hw: int, prune: float, device=None) -> torch.Tensor:
    """``[T]`` the authors' per-frame counts: ``int((1 - p) * H*W)`` in pruned frames, ``H*W`` in whole ones."""
    ref = reference_frames(num_frames, device)
    k = int((1.0 - prune) * hw)
    return torch.where(ref >= 0, torch.full_like(ref, k), torch.full_like(ref, hw))


class DycokeStage1Reducer:
    """Engine reducer for DyCoke stage 1: prune ratio ``prune`` (authors: 0.70 / 0.925) or, for exact
    budgets, ``keep`` (the budget spread evenly over the pruned frames, ``per_frame_keep``); rows in
    ``order`` (``"authors"`` or ``"raster"``)."""

    needs_attention = False

    def __init__(self, prune: float | None = None, keep: float | None = None, order: str = "authors") -> None:
        if (prune is None) == (keep is None):
            raise ValueError("DyCoke stage 1 needs exactly one of prune= or keep=")
        if prune is not None and not 0 <= prune <= 1:
            raise ValueError(f"DyCoke prune ratio must be in [0, 1], got {prune}")
        if keep is not None and not 0 < keep <= 1:
            raise ValueError(f"DyCoke keep fraction must be in (0, 1], got {keep}")
        if order not in ORDERS:
            raise ValueError(f"DyCoke order {order!r} is not one of {list(ORDERS)}")
        self.prune, self.keep, self.order = prune, keep, order

    def __call__(self, hidden: torch.Tensor, grid: Grid) -> Reduction:
        t, h, w = grid
        if self.prune is not None:
            counts = prune_ratio_counts(t, h * w, self.prune, hidden.device)
        else:
            counts = per_frame_keep(t, h * w, max(1, round(self.keep * t * h * w)), hidden.device)
        return dycoke_stage1(hidden, grid, counts, self.order)

    def __repr__(self) -> str:
        return f"DycokeStage1Reducer(prune={self.prune}, keep={self.keep}, order={self.order!r})"
