"""Build ``Reduction`` plans from a grouping or a keep mask of a video's ``N = T*H*W`` tokens.

Shared by the baseline methods (ToMe, DyCoke, FastV, FrameFusion, pooling) and the exact-budget
trimmer. Kept tokens always come out in raster order of their representatives (strictly
increasing ``rep_index``), as the engine requires.
"""

from __future__ import annotations

import torch

from lmms_sttm.merging.reduction import Reduction

Grid = tuple[int, int, int]


def unit_rects(index: torch.Tensor, grid: Grid) -> torch.Tensor:
    """``[M]`` original token indices -> ``[M, 5]`` 1x1 rectangles ``(t, y, x, y+1, x+1)``."""
    _, h, w = grid
    t, rest = index // (h * w), index % (h * w)
    y, x = rest // w, rest % w
    return torch.stack([t, y, x, y + 1, x + 1], dim=-1)


def group_mean(hidden: torch.Tensor, token_map: torch.Tensor, num_groups: int) -> torch.Tensor:
    """Plain mean per group: ``hidden [N, C]``, ``token_map [N]`` in ``[0, G)`` -> ``[G, C]`` (float32 sums)."""
    out = torch.zeros(num_groups, hidden.shape[1], dtype=torch.float32, device=hidden.device)
    out.index_add_(0, token_map, hidden.float())
    counts = torch.bincount(token_map, minlength=num_groups).clamp_min(1)
    return (out / counts[:, None].float()).to(hidden.dtype)


def from_groups(
    hidden: torch.Tensor, labels: torch.Tensor, grid: Grid, tlbr: torch.Tensor | None = None
) -> Reduction:
    """One kept token per group, the plain mean of its members, represented by its smallest index.

    Args:
        hidden: ``[N, C]`` original tokens in raster order.
        labels: ``[N]`` int64 group label of every token (any values in ``[0, N)``).
        grid: ``(T, H, W)``.
        tlbr: optional ``[N, 5]`` rectangle per original token; the representative's is used.
            Default: the representative's 1x1 cell.
    """
    n = hidden.shape[0]
    idx = torch.arange(n, device=hidden.device)
    first = torch.full((n,), n, dtype=torch.long, device=hidden.device)
    first.scatter_reduce_(0, labels, idx, reduce="amin")
    used = first < n
    rep = torch.sort(first[used]).values  # [N'] representatives, increasing
    rank = torch.full((n,), -1, dtype=torch.long, device=hidden.device)
    rank[labels.index_select(0, rep)] = torch.arange(rep.numel(), device=hidden.device)
    token_map = rank.index_select(0, labels)
    rects = unit_rects(rep, grid) if tlbr is None else tlbr.index_select(0, rep)
    return Reduction(
        features=group_mean(hidden, token_map, rep.numel()),
        num_patches=torch.bincount(token_map, minlength=rep.numel()),
        tlbr=rects,
        token_map=token_map,
        rep_index=rep,
        grid=tuple(grid),
        carry=lambda v: group_mean(v, token_map.to(v.device), rep.numel()),
    )


def resolve_roots(parent: torch.Tensor) -> torch.Tensor:
    """Pointer jumping: ``parent [N]`` (roots point to themselves, no cycles) -> ``[N]`` root of each node."""
    while True:
        nxt = parent.index_select(0, parent)
        if torch.equal(nxt, parent):
            return parent
        parent = nxt


def from_keep(hidden: torch.Tensor, keep: torch.Tensor, parent: torch.Tensor, grid: Grid) -> Reduction:
    """Pruning: kept tokens keep their own features; each dropped token is covered by its root.

    Args:
        hidden: ``[N, C]``; keep: ``[N]`` bool (at least one True).
        parent: ``[N]`` int64; dropped token -> a token it is attributed to (chains allowed, they
            must end at kept tokens, which point to themselves).
    """
    if not bool(keep.any()):
        raise ValueError("a pruning plan must keep at least one token")
    idx = torch.arange(hidden.shape[0], device=hidden.device)
    root = resolve_roots(torch.where(keep, idx, parent))
    if not bool(keep.index_select(0, root).all()):
        raise ValueError("pruning parents must resolve to kept tokens")
    rep = torch.nonzero(keep).squeeze(1)
    token_map = torch.searchsorted(rep, root)
    return Reduction(
        features=hidden.index_select(0, rep),
        num_patches=torch.bincount(token_map, minlength=rep.numel()),
        tlbr=unit_rects(rep, grid),
        token_map=token_map,
        rep_index=rep,
        grid=tuple(grid),
        carry=lambda v: v.index_select(0, rep.to(v.device)),
    )


def previous_kept_parent(keep: torch.Tensor) -> torch.Tensor:
    """``[N]`` parent for 1-D pruning: the nearest kept token before (else the first kept one)."""
    n = keep.shape[0]
    idx = torch.arange(n, device=keep.device)
    last = torch.where(keep, idx, torch.full_like(idx, -1)).cummax(0).values
    first = int(torch.nonzero(keep)[0])
    return torch.where(last >= 0, last, torch.full_like(idx, first))


def merge_kept(plan: Reduction, assign: torch.Tensor) -> Reduction:
    """Merge a plan's kept tokens further: ``assign [N']`` labels -> a coarser plan.

    The new token of a label is the patch-count-weighted mean of its members' features (for means
    of original tokens this is the mean over all covered tokens); its representative is the
    member with the smallest ``rep_index`` and keeps that member's rectangle.
    """
    kept = plan.num_kept
    dev = plan.features.device
    big = plan.num_original
    first = torch.full((kept,), big, dtype=torch.long, device=dev)
    first.scatter_reduce_(0, assign, plan.rep_index, reduce="amin")
    used = first < big
    rep, order = torch.sort(first[used])
    labels = torch.nonzero(used).squeeze(1).index_select(0, order)  # label of each new token
    rank = torch.full((kept,), -1, dtype=torch.long, device=dev)
    rank[labels] = torch.arange(rep.numel(), device=dev)
    new_of_old = rank.index_select(0, assign)  # [N'] -> new index
    weight = plan.num_patches.float()
    sums = torch.zeros(rep.numel(), plan.features.shape[1], dtype=torch.float32, device=dev)
    sums.index_add_(0, new_of_old, plan.features.float() * weight[:, None])
    sizes = torch.zeros(rep.numel(), dtype=torch.long, device=dev).index_add_(0, new_of_old, plan.num_patches)
    # the member whose rep is the new rep: its old index
    old_idx = torch.arange(kept, device=dev)
    is_rep = plan.rep_index == rep.index_select(0, new_of_old)
    rep_old = torch.zeros(rep.numel(), dtype=torch.long, device=dev)
    rep_old[new_of_old[is_rep]] = old_idx[is_rep]

    def carry(values: torch.Tensor) -> torch.Tensor:
        kept_values = plan.carried(values)
        total = torch.zeros(rep.numel(), values.shape[1], dtype=torch.float32, device=values.device)
        total.index_add_(
            0, new_of_old.to(values.device), kept_values.float() * weight.to(values.device)[:, None]
        )
        return (total / sizes.to(values.device)[:, None].float()).to(values.dtype)

    return Reduction(
        features=(sums / sizes[:, None].float()).to(plan.features.dtype),
        num_patches=sizes,
        tlbr=plan.tlbr.index_select(0, rep_old),
        token_map=new_of_old.index_select(0, plan.token_map),
        rep_index=rep,
        grid=plan.grid,
        carry=None if plan.carry is None else carry,
    )
