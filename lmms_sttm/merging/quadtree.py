"""Spatial merging of STTM: a per-frame quadtree search over a pooled feature pyramid.

The pyramid (level sizes, pooling, norms) lives in ``pyramid``, the pair similarities in
``similarity`` and the thread policy in ``threads``; their public names are re-exported here.

Coarse-to-fine search: every root cell of every frame is active. An active parent *stops* (is
emitted as one token) when the cosine similarity between its feature and each of its child
slots is >= tau_s; otherwise its children become active. Active cells of the finest level are
emitted as they are. Parents with fewer than four children have unused slots; the authors do not
mask them in the stop test, so those slots stand for the frame's top-left child cell (0, 0).
``mask_unused_slots=True`` tests only the real children.

Implementation: everything is vectorised over frames and cells; Python loops run over levels
only. A stop test needs one dot per
tested (parent, child) pair; those dots are computed for exactly those pairs by a sampled
dense-dense matmul over a CSR pattern (``pair_dots``): no dense all-pairs product, no gathered
copies of rows. On CPU, index bookkeeping runs single-threaded and the kernels over ``[*, C]``
features use all intra-op threads (``bookkeeping_threads``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lmms_sttm.merging.pyramid import (
    AxisPyramid,
    Pyramid,
    axis_pyramid,
    build_pyramid,
    level_sizes,
    materialize,
    pool_level,
)
from lmms_sttm.merging.similarity import EPS, pair_cosine, pair_dots
from lmms_sttm.merging.threads import bookkeeping_threads, heavy_threads

__all__ = [
    "EPS",
    "AxisPyramid",
    "Pyramid",
    "SpatialNodes",
    "axis_pyramid",
    "bookkeeping_threads",
    "build_pyramid",
    "heavy_threads",
    "level_sizes",
    "materialize",
    "min_child_similarity",
    "pair_cosine",
    "pair_dots",
    "pool_level",
    "search",
    "spatial_nodes",
]


def _test_slots(pyr: Pyramid, lvl: int, mask_unused_slots: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Child cells tested against each level-``lvl`` cell: ``([cells, 5] child in frame, [cells, 5] used)``.

    Slot 0 is the authors' unused-slot stand-in (child cell 0), used by parents with fewer than
    four children other than cell 0 itself (which contains child 0); slots 1-4 are the children
    in raster order, so the tested children of a parent are in increasing order.
    """
    slots, valid = pyr.child_slots(lvl)
    cells = slots.shape[0]
    quirk = (valid.sum(1) < 4) & (torch.arange(cells, device=slots.device) > 0)
    if mask_unused_slots:
        quirk = torch.zeros_like(quirk)
    return torch.cat([torch.zeros_like(slots[:, :1]), slots], 1), torch.cat([quirk[:, None], valid], 1)


def min_child_similarity(
    feats: list[torch.Tensor],
    norms: list[torch.Tensor],
    pyr: Pyramid,
    lvl: int,
    active: torch.Tensor,
    mask: bool,
) -> torch.Tensor:
    """``[n]`` least cosine similarity between each ``active`` level-``lvl`` parent and its tested slots.

    ``active``: ``[n]`` increasing global level-``lvl`` cells (``lvl < depth - 1``). A parent stops
    when this value is >= tau_s. One dot per tested (parent, child slot) pair, computed only for
    those pairs; cosines use the precomputed norms. Pairs come parent by parent with children in
    increasing order.
    """
    test_child, test_used = _test_slots(pyr, lvl, mask)
    cells, cells2 = pyr.cells(lvl), pyr.cells(lvl + 1)
    local = active % cells
    child = test_child.index_select(0, local) + (active // cells * cells2)[:, None]  # [n, 5]
    used = test_used.index_select(0, local)
    pick = torch.nonzero(used.view(-1)).squeeze(1)
    parent = active[:, None].expand(-1, 5).reshape(-1).index_select(0, pick)
    sims = pair_cosine(
        feats[lvl], norms[lvl], parent, feats[lvl + 1], norms[lvl + 1], child.view(-1).index_select(0, pick)
    )
    worst = torch.full((child.numel(),), math.inf, dtype=sims.dtype, device=active.device)
    return worst.scatter_(0, pick, sims).view(-1, 5).amin(1)


def _children(pyr: Pyramid, lvl: int, parents: torch.Tensor) -> torch.Tensor:
    """Increasing global level-``lvl+1`` cells that are children of the level-``lvl`` ``parents``."""
    slots, valid = pyr.child_slots(lvl)
    cells, cells2 = pyr.cells(lvl), pyr.cells(lvl + 1)
    local = parents % cells
    child = slots.index_select(0, local) + (parents // cells * cells2)[:, None]
    mark = torch.zeros(pyr.frames * cells2, dtype=torch.bool, device=parents.device)
    mark.index_fill_(0, torch.masked_select(child, valid.index_select(0, local)), True)
    return torch.nonzero(mark).squeeze(1)


def search(
    feats: list[torch.Tensor],
    norms: list[torch.Tensor],
    pyr: Pyramid,
    tau_s: float,
    mask_unused_slots: bool = False,
) -> list[torch.Tensor]:
    """Coarse-to-fine quadtree search over all frames at once.

    Args:
        feats, norms: per level features and norms from ``materialize``.
        pyr: the pyramid.
        tau_s: stop threshold (inclusive).
        mask_unused_slots: test only real children (the authors test unused slots against cell 0).

    Returns:
        Per level, the ``[E_l]`` increasing global cell indices emitted at that level.
    """
    active = torch.arange(feats[0].shape[0], device=feats[0].device)
    emitted = []
    for lvl in range(pyr.depth - 1):
        stop = min_child_similarity(feats, norms, pyr, lvl, active, mask_unused_slots) >= tau_s
        emitted.append(torch.masked_select(active, stop))
        active = _children(pyr, lvl, torch.masked_select(active, ~stop))
    emitted.append(active)
    return emitted


@dataclass(frozen=True)
class SpatialNodes:
    """The tokens emitted by the spatial search, in raster order of their top-left corners.

    Attributes (``S`` nodes, ``N = T*H*W`` leaves):
        level: ``[S]`` int64 pyramid level of each node (0 = root).
        cell: ``[S]`` int64 global cell index ``t*h*w + i*w + j`` at that level.
        tlbr: ``[S, 5]`` int64 ``(t, y0, x0, y1, x1)`` in leaf units.
        rep_leaf: ``[S]`` int64 original index of each node's top-left leaf (increasing).
        leaf_node: ``[N]`` int64 node covering each leaf.
        is_rep: ``[N]`` bool, whether a leaf is the top-left leaf of its node.
    """

    level: torch.Tensor
    cell: torch.Tensor
    tlbr: torch.Tensor
    rep_leaf: torch.Tensor
    leaf_node: torch.Tensor
    is_rep: torch.Tensor

    @property
    def num_patches(self) -> torch.Tensor:
        """``[S]`` int64 area of each node in leaves."""
        return (self.tlbr[:, 3] - self.tlbr[:, 1]) * (self.tlbr[:, 4] - self.tlbr[:, 2])


def spatial_nodes(emitted: list[torch.Tensor], pyr: Pyramid) -> SpatialNodes:
    """Number the emitted cells in raster order of their top-left leaf and map every leaf to its node."""
    height, width = pyr.sizes[-1]
    hw = height * width
    device = emitted[0].device
    num_leaves = pyr.frames * hw
    corner, rects = [], []
    for lvl, cell in enumerate(emitted):
        h, w = pyr.sizes[lvl]
        t, i, j = cell // (h * w), cell % (h * w) // w, cell % w
        y0, x0 = pyr.rows.lo[lvl].index_select(0, i), pyr.cols.lo[lvl].index_select(0, j)
        y1, x1 = pyr.rows.hi[lvl].index_select(0, i), pyr.cols.hi[lvl].index_select(0, j)
        rects.append(torch.stack([t, y0, x0, y1, x1], 1))
        corner.append(t * hw + y0 * width + x0)
    is_rep = torch.zeros(num_leaves, dtype=torch.bool, device=device)
    for c in corner:
        is_rep.index_fill_(0, c, True)
    rank = torch.cumsum(is_rep, 0) - 1
    rep_leaf = torch.nonzero(is_rep).squeeze(1)
    count = rep_leaf.shape[0]
    level = torch.empty(count, dtype=torch.int64, device=device)
    cell_of = torch.empty(count, dtype=torch.int64, device=device)
    tlbr = torch.empty(count, 5, dtype=torch.int64, device=device)
    leaf_node = torch.full((num_leaves,), -1, dtype=torch.int64, device=device)
    for lvl, cell in enumerate(emitted):
        node = rank.index_select(0, corner[lvl])
        level.index_fill_(0, node, lvl)
        cell_of.index_copy_(0, node, cell)
        tlbr.index_copy_(0, node, rects[lvl])
        at_cell = torch.full((pyr.frames * pyr.cells(lvl),), -1, dtype=torch.int64, device=device)
        at_cell.index_copy_(0, cell, node)
        leaf_node = torch.maximum(leaf_node, at_cell.index_select(0, pyr.leaf_ancestor(lvl)))
    return SpatialNodes(level, cell_of, tlbr, rep_leaf, leaf_node, is_rep)
