"""How many tokens STTM keeps on one video, for any thresholds, from similarities computed once.

An exact-budget search (``budget.sttm_exact``) asks for the kept count at many threshold pairs;
a full ``merge_video`` per pair repeats the pyramid, every similarity and the output features.
Every decision of STTM compares a threshold with a similarity that does not depend on the
thresholds, so ``SttmCounts`` computes those once:

- spatial: each parent cell's least similarity to its tested child slots ``s(c)`` (+inf at the
  leaf level) and the largest ``s`` of its strict ancestors ``a(c)`` (-inf at the root). For any
  ``tau_s`` a cell is a node exactly when ``a(c) < tau_s <= s(c)``: no ancestor stopped, it did.
- temporal: the cosine of every nested cell pair of consecutive frames (two quadtrees over one
  pyramid overlap only when nested, so the candidate pairs of any two node sets are among these),
  computed by the same kernel and in the same orientation (which side is the row) as
  ``temporal.pair_similarity``.

``count(tau_s, tau_t)`` keeps the pairs whose cells are both nodes with a similarity >= tau_t and
runs ``temporal.union_find`` on them, labelling each node by its top-left leaf: that numbering has
the order of ``merge_video``'s node indices, so the authors' rounds, the components rule and
``best_partner`` give the same groups. Each call is a few vector operations over the cells and
pairs, with no features touched. ``plan(tau_s, tau_t)`` turns the same decisions into
``merge_video``'s ``Reduction`` (``sttm.build_plan``), so a search merges once, at the pair it
settles on.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from lmms_sttm.merging import temporal
from lmms_sttm.merging.pyramid import Pyramid, build_pyramid, level_sizes
from lmms_sttm.merging.quadtree import min_child_similarity, spatial_nodes
from lmms_sttm.merging.reduction import Reduction
from lmms_sttm.merging.similarity import pair_cosine
from lmms_sttm.merging.sttm import build_plan

COUNT_OPTIONS = ("mask_unused_slots", "best_partner", "union_find")
"""The keyword options of ``merge_video`` that change how many tokens it keeps (``SttmCounts`` takes them)."""

MERGE_OPTIONS = (*COUNT_OPTIONS, "weighted", "merge_dtype")
"""Every keyword option of ``merge_video``; ``weighted`` changes features only, ``merge_dtype`` the pyramid."""


def _cell_tables(pyr: Pyramid) -> tuple[list[torch.Tensor], list[torch.Tensor], list[int]]:
    """Per level: ``[H*W]`` local cell of each leaf of a frame, ``[h*w]`` top-left leaf (in frame) of each cell,
    and the offset of the level's first cell in the all-levels cell space (``T * h*w`` cells per level)."""
    width = pyr.sizes[-1][1]
    hw = pyr.cells(pyr.depth - 1)
    anc, corner, offsets, start = [], [], [], 0
    for lvl in range(pyr.depth):
        anc.append(pyr.leaf_ancestor(lvl)[:hw])
        corner.append((pyr.rows.lo[lvl][:, None] * width + pyr.cols.lo[lvl][None, :]).reshape(-1))
        offsets.append(start)
        start += pyr.frames * pyr.cells(lvl)
    return anc, corner, offsets


@dataclass(frozen=True)
class GridLayout:
    """What ``SttmCounts`` needs of a grid besides its features (``M`` cells over all levels).

    Attributes:
        offsets: the first cell of each level in the all-levels cell space (``T * h*w`` per level).
        corner: ``[M]`` int64 global top-left leaf ``t*H*W + y0*W + x0`` of each cell.
        parent: per level ``l < depth - 1``, ``[T * cells(l+1)]`` the level-``l`` parent of each
            level-``l+1`` cell (global cells of their levels).
        pairs: the nested cell pairs of consecutive frames, one entry per (row level, column level)
            of the similarity kernel: ``(lr, lc, rows [K], cols [K], first [K], second [K])``,
            ``rows``/``cols`` global cells of those levels sorted for ``pair_dots``,
            ``first``/``second`` the frame-t / frame-t+1 cell of each pair in the cell space. A
            pair's row side is its frame-t+1 cell exactly when the pair's anchor (the top-left leaf
            of its smaller cell) is that cell's top-left leaf, as in ``temporal.pair_similarity``.
    """

    offsets: list[int]
    corner: torch.Tensor
    parent: list[torch.Tensor]
    pairs: list[tuple[int, int, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]


@functools.lru_cache(maxsize=16)
def grid_layout(
    frames: int, height: int, width: int, root: tuple[int, int], device: torch.device
) -> GridLayout:
    """The ``GridLayout`` of a ``T x H x W`` grid whose root level is ``root``. Memoised."""
    sizes = level_sizes(height, width)
    pyr = build_pyramid(frames, height, width, sizes.index(root), device)
    anc, corner, offsets = _cell_tables(pyr)
    hw = pyr.cells(pyr.depth - 1)
    frame = torch.arange(frames, device=device)[:, None] * hw
    corners = torch.cat([(frame + c[None, :]).reshape(-1) for c in corner])
    parent = []
    for lvl in range(pyr.depth - 1):
        up = torch.empty(frames * pyr.cells(lvl + 1), dtype=torch.int64, device=device)
        parent.append(up.index_put_((pyr.leaf_ancestor(lvl + 1),), pyr.leaf_ancestor(lvl)))
    return GridLayout(offsets, corners, parent, _pairs(pyr, anc, corner, offsets))


def _pairs(pyr: Pyramid, anc, corner, offsets) -> list:
    """``GridLayout.pairs`` (see there) from the tables of :func:`_cell_tables`."""
    frames, device = pyr.frames, corner[0].device
    leaf = torch.arange(pyr.cells(pyr.depth - 1), device=device)
    later = torch.arange(1, frames, device=device)[:, None]  # [T-1, 1] frame of the second cell
    groups: dict[tuple[int, int], list[tuple[torch.Tensor, ...]]] = {}
    for l1 in range(pyr.depth):
        for l2 in range(pyr.depth):
            fine = max(l1, l2)
            at = torch.nonzero(corner[fine].index_select(0, anc[fine]) == leaf).squeeze(1)
            c1, c2 = anc[l1].index_select(0, at), anc[l2].index_select(0, at)
            second_rows = (corner[l2].index_select(0, c2) == at)[None, :].expand(frames - 1, -1).reshape(-1)
            g1 = ((later - 1) * pyr.cells(l1) + c1[None, :]).reshape(-1)
            g2 = (later * pyr.cells(l2) + c2[None, :]).reshape(-1)
            for flag in (False, True):
                sel = torch.nonzero(second_rows == flag).squeeze(1)
                a, b = g1.index_select(0, sel), g2.index_select(0, sel)
                key = (l2, l1) if flag else (l1, l2)
                rows, cols = (b, a) if flag else (a, b)
                groups.setdefault(key, []).append((rows, cols, a + offsets[l1], b + offsets[l2]))
    out = []
    for (lr, lc), parts in sorted(groups.items()):
        rows, cols, first, second = (torch.cat(p) for p in zip(*parts, strict=True))
        if rows.numel() == 0:
            continue
        order = torch.argsort(rows * (int(cols.max()) + 1) + cols)
        out.append((lr, lc, *(t.index_select(0, order) for t in (rows, cols, first, second))))
    return out


class SttmCounts:
    """Kept-token counts of ``merge_video`` on one video (see the module docstring).

    Args:
        pyr, feats, norms: the video's pyramid and per-level ``[T*h*w, C]`` features and
            ``[T*h*w]`` norms (``sttm.pyramid_features``); read only here, in the constructor.
        mask_unused_slots, best_partner, union_find: as in ``merge_video``.
        dtype: the dtype of ``plan``'s features (the video's own; default that of ``feats[-1]``).

    Attributes (``M`` cells over all levels, ``P`` nested pairs):
        lowest: ``[M]`` largest stop similarity of each cell's strict ancestors (``a``).
        own: ``[M]`` least similarity of each cell to its tested slots (``s``; +inf for leaves).
        corner: ``[M]`` int64 global top-left leaf of each cell (``layout``: its ``GridLayout``).
        first, second: ``[P]`` int64 cells of frame t and t+1 of each nested pair; ``sims``: ``[P]``.
    """

    def __init__(
        self,
        pyr: Pyramid,
        feats: list[torch.Tensor],
        norms: list[torch.Tensor],
        mask_unused_slots: bool = False,
        best_partner: bool = False,
        union_find: str = "authors",
        dtype: torch.dtype | None = None,
    ) -> None:
        self.pyr, self.leaves, self.dtype = pyr, feats[-1], dtype or feats[-1].dtype
        self.num_leaves = feats[-1].shape[0]
        self.best_partner, self.rule = best_partner, union_find
        self.layout = grid_layout(pyr.frames, *pyr.sizes[-1], pyr.sizes[0], feats[0].device)
        self.corner = self.layout.corner
        self._spatial(pyr, feats, norms, mask_unused_slots)
        self._similarities(feats, norms)

    def _spatial(self, pyr, feats, norms, mask) -> None:
        device = feats[0].device
        own, lowest = [], []
        above = torch.full((pyr.frames * pyr.cells(0),), -math.inf, dtype=feats[0].dtype, device=device)
        for lvl in range(pyr.depth):
            if lvl < pyr.depth - 1:
                active = torch.arange(pyr.frames * pyr.cells(lvl), device=device)
                s = min_child_similarity(feats, norms, pyr, lvl, active, mask)
            else:
                s = torch.full_like(above, math.inf)
            own.append(s)
            lowest.append(above)
            if lvl < pyr.depth - 1:  # every child's strict ancestors: its parent's and the parent itself
                above = torch.maximum(above, s).index_select(0, self.layout.parent[lvl])
        self.own, self.lowest = torch.cat(own), torch.cat(lowest)

    def _similarities(self, feats, norms) -> None:
        device = feats[0].device
        firsts, seconds, sims = [], [], []
        for lr, lc, rows, cols, first, second in self.layout.pairs:
            sims.append(pair_cosine(feats[lr], norms[lr], rows, feats[lc], norms[lc], cols))
            firsts.append(first)
            seconds.append(second)
        empty = torch.zeros(0, dtype=torch.int64, device=device)
        self.first = torch.cat(firsts) if firsts else empty
        self.second = torch.cat(seconds) if seconds else empty
        self.sims = torch.cat(sims) if sims else feats[0].new_zeros(0)

    def nodes(self, tau_s: float) -> torch.Tensor:
        """``[M]`` bool: which cells are nodes of the spatial search at ``tau_s``."""
        return (self.lowest < tau_s) & (self.own >= tau_s)

    def _groups(self, tau_s: float, tau_t: float) -> tuple[torch.Tensor, torch.Tensor]:
        """``([M] node mask, [N] label)``: the label of a node's top-left leaf is its group's top-left leaf."""
        node = self.nodes(tau_s)
        if tau_t <= 0 or self.first.numel() == 0:
            return node, torch.arange(self.num_leaves, device=node.device)
        keep = node.index_select(0, self.first) & node.index_select(0, self.second) & (self.sims >= tau_t)
        edge = torch.nonzero(keep).squeeze(1)
        a = self.corner.index_select(0, self.first.index_select(0, edge))
        b = self.corner.index_select(0, self.second.index_select(0, edge))
        if self.best_partner:
            best = temporal.best_partner_edges(a, b, self.sims.index_select(0, edge))
            a, b = a.index_select(0, best), b.index_select(0, best)
        return node, temporal.union_find(self.num_leaves, a, b, rule=self.rule)

    def count(self, tau_s: float, tau_t: float) -> int:
        """Number of tokens ``merge_video(x, tau_s, tau_t, ...)`` keeps."""
        node, label = self._groups(tau_s, tau_t)
        corners = torch.masked_select(self.corner, node)
        return int((label.index_select(0, corners) == corners).sum())

    def plan(self, tau_s: float, tau_t: float, weighted: bool = False) -> Reduction:
        """``merge_video(x, tau_s, tau_t, ...)``'s plan, from the decisions ``count`` makes.

        Reads the original tokens ``feats[-1]`` given to the constructor (which may live in
        scratch memory that the next ``merge_video`` or ``pyramid_features`` call reuses).
        """
        node, label = self._groups(tau_s, tau_t)
        pyr, offsets = self.pyr, self.layout.offsets
        ends = [*offsets[1:], node.shape[0]]
        emitted = [torch.nonzero(node[a:b]).squeeze(1) for a, b in zip(offsets, ends, strict=True)]
        nodes = spatial_nodes(emitted, pyr)
        group = nodes.leaf_node.index_select(0, label.index_select(0, nodes.rep_leaf))
        return build_plan(self.leaves, pyr, nodes, group, weighted, self.dtype)
