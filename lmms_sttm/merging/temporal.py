"""Temporal merging of STTM: link spatially merged nodes of consecutive frames, then group them.

Candidate pairs join a node of frame t and a node of frame t+1 whose rectangles are nested
(either contains the other, equality included). Because both frames are quadtrees over the same
pyramid, two nodes are nested exactly when they overlap, and every overlapping pair shares the
top-left leaf of its smaller node. The candidates are therefore read off the leaf grid: at each
leaf that is the top-left corner of a node in frame t or in frame t+1, pair the two nodes that
cover it. Each nested pair appears exactly once.

A pair is kept when the cosine similarity (fp32 or better) of the two nodes' spatially merged
features is >= tau_t. Kept pairs are grouped by a vectorised union-find; the representative of a
group is its smallest node index, i.e. its earliest frame and then the first node in raster
order. ``union_find="authors"`` (the default of ``merge_video``) runs the authors' rounds and
their stopping rule (stop as soon as the labels are idempotent), which can end before all kept
pairs are joined; ``"components"`` gives the exact connected components (roots hook onto smaller
roots by atomic min, then pointer jumping, until every kept pair shares one label).

Variants: ``best_partner`` keeps, for each node of frame t+1, only its most similar kept partner
in frame t (paper Tab. 7 "optimal"; ties go to the smaller index).
"""

from __future__ import annotations

import torch

from lmms_sttm.merging.quadtree import SpatialNodes
from lmms_sttm.merging.similarity import pair_cosine


def candidate_pairs(nodes: SpatialNodes, frames: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Nested node pairs of consecutive frames: ``([P] node in frame t, [P] node in frame t+1, P_a)``.

    The first ``P_a`` pairs are anchored at the top-left leaf of their frame-t node (increasing
    in that node), the rest at the top-left leaf of their frame-t+1 node (increasing in it).
    """
    if frames < 2:
        empty = nodes.leaf_node[:0]
        return empty, empty, 0
    hw = nodes.leaf_node.shape[0] // frames
    is_rep = nodes.is_rep.view(frames, hw)
    at_later = is_rep[1:].reshape(-1)
    at_earlier = (is_rep[:-1] & ~is_rep[1:]).reshape(-1)
    anchor = torch.cat([torch.nonzero(at_earlier).squeeze(1), torch.nonzero(at_later).squeeze(1)])
    a = nodes.leaf_node.index_select(0, anchor)
    b = nodes.leaf_node.index_select(0, anchor + hw)
    return a, b, int(at_earlier.sum())


def _similarity(
    nodes: SpatialNodes,
    feats: list[torch.Tensor],
    norms: list[torch.Tensor],
    rows: torch.Tensor,
    cols: torch.Tensor,
) -> torch.Tensor:
    """``[P]`` cosine similarity of node pairs whose ``rows`` side is strictly increasing."""
    depth = len(feats)
    lr, lc = nodes.level.index_select(0, rows), nodes.level.index_select(0, cols)
    cr, cc = nodes.cell.index_select(0, rows), nodes.cell.index_select(0, cols)
    combo = lr * depth + lc
    sims = torch.empty(rows.shape[0], dtype=feats[0].dtype, device=rows.device)
    counts = torch.bincount(combo, minlength=depth * depth).tolist()
    for code, count in enumerate(counts):  # one sampled product per (level, level) combination
        if count == 0:
            continue
        sel = torch.nonzero(combo == code).squeeze(1)
        l1, l2 = divmod(code, depth)
        r, c = cr.index_select(0, sel), cc.index_select(0, sel)
        sims.index_copy_(0, sel, pair_cosine(feats[l1], norms[l1], r, feats[l2], norms[l2], c))
    return sims


def pair_similarity(
    nodes: SpatialNodes,
    feats: list[torch.Tensor],
    norms: list[torch.Tensor],
    a: torch.Tensor,
    b: torch.Tensor,
    split: int,
) -> torch.Tensor:
    """``[P]`` cosine similarity of the pairs from ``candidate_pairs`` (``split`` = its ``P_a``).

    ``feats``/``norms``: per level ``[T*h*w, C]`` features and ``[T*h*w]`` norms.
    """
    first = _similarity(nodes, feats, norms, a[:split], b[:split])
    second = _similarity(nodes, feats, norms, b[split:], a[split:])
    return torch.cat([first, second])


def best_partner_edges(a: torch.Tensor, b: torch.Tensor, sims: torch.Tensor) -> torch.Tensor:
    """Indices of the edges that are, for their later node ``b``, the most similar (ties: smallest ``a``)."""
    order = torch.argsort(a, stable=True)
    order = order.index_select(0, torch.argsort(-sims.index_select(0, order), stable=True))
    order = order.index_select(0, torch.argsort(b.index_select(0, order), stable=True))
    later = b.index_select(0, order)
    first = torch.ones_like(order, dtype=torch.bool)
    first[1:] = later[1:] != later[:-1]
    return torch.masked_select(order, first)


def _compress(label: torch.Tensor) -> torch.Tensor:
    """Pointer jumping until every label is a root (``label[label] == label``)."""
    while True:
        up = label.index_select(0, label)
        if torch.equal(up, label):
            return label
        label = up


UNION_FIND = ("authors", "components")
"""Accepted ``rule`` values of ``union_find``."""


def union_find(num: int, a: torch.Tensor, b: torch.Tensor, rule: str = "authors") -> torch.Tensor:
    """``[num]`` group label (smallest member index) of each node, for the edges ``a[k] - b[k]``.

    ``rule="components"``: every round hooks, for each edge joining two different trees, the larger
    root onto the smaller one (atomic min), then compresses all paths; rounds repeat until every
    edge lies within one tree. Roots only ever hook onto smaller indices, so each final root is
    its component's smallest node.

    ``rule="authors"``: the authors' rounds instead scatter the minimum of the endpoints' labels to
    both endpoints, jump one pointer, and stop as soon as the labels are idempotent, which can
    leave linked nodes in different groups.
    """
    if rule not in UNION_FIND:
        raise ValueError(f"union_find={rule!r} is not accepted; use one of {list(UNION_FIND)}")
    label = torch.arange(num, device=a.device)
    if a.numel() == 0:
        return label
    if rule == "authors":
        while True:
            low = torch.minimum(label.index_select(0, a), label.index_select(0, b))
            label = label.clone()
            label.scatter_reduce_(0, a, low, reduce="amin")
            label.scatter_reduce_(0, b, low, reduce="amin")
            label = label.index_select(0, label)
            if torch.equal(label, label.index_select(0, label)):
                return label
    while True:
        la, lb = label.index_select(0, a), label.index_select(0, b)
        if torch.equal(la, lb):
            return label
        label = label.scatter_reduce(0, torch.maximum(la, lb), torch.minimum(la, lb), reduce="amin")
        label = _compress(label)


def temporal_groups(
    nodes: SpatialNodes,
    feats: list[torch.Tensor],
    norms: list[torch.Tensor],
    frames: int,
    tau_t: float,
    best_partner: bool = False,
    rule: str = "authors",
) -> torch.Tensor:
    """``[S]`` group label (smallest member node index) of each spatial node; ``tau_t <= 0`` disables.

    ``feats``/``norms``: per level ``[T*h*w, C]`` features and ``[T*h*w]`` norms.
    """
    num = nodes.level.shape[0]
    if tau_t <= 0 or frames < 2:
        return torch.arange(num, device=nodes.level.device)
    a, b, split = candidate_pairs(nodes, frames)
    sims = pair_similarity(nodes, feats, norms, a, b, split)
    keep = torch.nonzero(sims >= tau_t).squeeze(1)
    a, b = a.index_select(0, keep), b.index_select(0, keep)
    if best_partner:
        edge = best_partner_edges(a, b, sims.index_select(0, keep))
        a, b = a.index_select(0, edge), b.index_select(0, edge)
    return union_find(num, a, b, rule=rule)
