"""Spatial merging of STTM: a per-frame quadtree search over a pooled feature pyramid.

The pyramid (level sizes, pooling, norms) lives in ``pyramid``, the pair similarities in
``similarity`` and the thread policy in ``threads``; the names the search needs are re-exported here.

Coarse-to-fine search: every root cell of every frame is active. An active parent *stops* (is
emitted as one token) when the cosine similarity between its feature and each of its child
slots is >= tau_s; otherwise its children become active. Active cells of the finest level are
emitted as they are. Parents with fewer than four children have unused slots; the authors do not
mask them in the stop test, so those slots stand for the frame's top-left child cell (0, 0).
``mask_unused_slots=True`` tests only the real children.

Implementation: everything is vectorised over frames and cells; Python loops run over levels
only. A parent's feature is the mean of its children, so its stop test (its dots with its
children and its norm) follows from the Gram block of its children; the upper triangles of those
blocks are computed for exactly the active parents by a sampled dense-dense matmul over a CSR
pattern (``pair_dots``): each child row is read once, parents and norms need no pass of their
own, and no dense all-pairs product or gathered copy of rows is made. On CPU, index bookkeeping
runs single-threaded and the kernels over ``[*, C]`` features use all intra-op threads
(``threads.bookkeeping_threads``).
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
)
from lmms_sttm.merging.similarity import EPS, pair_cosine, pair_dots
from lmms_sttm.merging.threads import heavy_threads

__all__ = [
    "EPS",
    "AxisPyramid",
    "Pyramid",
    "SpatialNodes",
    "axis_pyramid",
    "build_pyramid",
    "level_sizes",
    "pair_cosine",
    "pair_dots",
    "search",
    "spatial_nodes",
]


@dataclass(frozen=True)
class _LevelTest:
    """The stop test of the active level-``lvl`` parents (``n`` of them, ``m`` children in all).

    Attributes:
        worst: ``[n]`` smallest cosine similarity between each parent and its tested child slots.
        parent_norm: ``[n]`` L2 norm of each parent's feature.
        kids: ``[m]`` increasing global level-``lvl+1`` cells, the children of the parents.
        kid_parent: ``[m]`` position in the active list of each child's parent.
        kid_norm: ``[m]`` L2 norm of each child's feature.
    """

    worst: torch.Tensor
    parent_norm: torch.Tensor
    kids: torch.Tensor
    kid_parent: torch.Tensor
    kid_norm: torch.Tensor


def _level_test(
    child_feats: torch.Tensor, pyr: Pyramid, lvl: int, active: torch.Tensor, mask: bool
) -> _LevelTest:
    """Stop-test cosines of the ``active`` level-``lvl`` parents from the Gram blocks of their children.

    A parent's feature is the mean of its ``k`` children, so with ``G`` the Gram matrix of the
    children (``child_feats [T*h2*w2, C]``): ``p . c_i = sum_j G_ij / k`` and
    ``|p|^2 = sum_ij G_ij / k^2``. Only the upper triangle of each block is computed (one read of
    each child row, no read of the parents). The authors' unused-slot stand-in (the frame's child
    cell 0, tested against parents with fewer than four children, cell 0 excepted, unless
    ``mask``) adds the dots of that cell with the children of those parents.
    """
    device = active.device
    cells, cells2 = pyr.cells(lvl), pyr.cells(lvl + 1)
    slots, valid = pyr.child_slots(lvl)
    parent_of, slot_of = pyr.parent_slots(lvl)
    kids = _children(pyr, lvl, active)
    frame = kids // cells2
    local_parent = parent_of.index_select(0, kids % cells2)
    where = torch.full((pyr.frames * cells,), -1, dtype=torch.int64, device=device)
    where.index_copy_(0, active, torch.arange(active.shape[0], device=device))
    kid_parent = where.index_select(0, local_parent + frame * cells)
    count = valid.sum(1).index_select(0, active % cells).to(child_feats.dtype)  # [n] children per parent

    # Upper triangle of each block, row by row: row = a child, columns = its later siblings.
    sibling = slots.index_select(0, local_parent) + (frame * cells2)[:, None]  # [m, 4]
    later = valid.index_select(0, local_parent) & (
        torch.arange(4, device=device)[None, :] >= slot_of.index_select(0, kids % cells2)[:, None]
    )
    row = torch.arange(kids.shape[0], device=device)[:, None].expand(-1, 4).reshape(-1)
    pick = torch.nonzero(later.view(-1)).squeeze(1)
    row = row.index_select(0, pick)
    col_cell = sibling.view(-1).index_select(0, pick)
    gram = pair_dots(child_feats, kids.index_select(0, row), child_feats, col_cell)
    position = torch.empty(pyr.frames * cells2, dtype=torch.int64, device=device)
    position.index_copy_(0, kids, torch.arange(kids.shape[0], device=device))  # of each child in kids
    col = position.index_select(0, col_cell)
    diagonal = col == row
    off = torch.nonzero(~diagonal).squeeze(1)
    row_sum = torch.zeros(kids.shape[0], dtype=gram.dtype, device=device).index_add_(0, row, gram)
    row_sum.index_add_(0, col.index_select(0, off), gram.index_select(0, off))
    total = torch.zeros_like(count).index_add_(
        0, kid_parent.index_select(0, row), gram * (2.0 - diagonal.to(gram.dtype))
    )
    kid_norm = torch.sqrt(torch.masked_select(gram, diagonal))  # the diagonal entry opens each row
    parent_norm = torch.sqrt(total.clamp_min(0.0)) / count
    kid_count = count.index_select(0, kid_parent)
    den = parent_norm.index_select(0, kid_parent).clamp_min(EPS) * kid_norm.clamp_min(EPS)
    cos = (row_sum / kid_count / den).clamp(-1.0, 1.0)
    worst = torch.full_like(count, math.inf).scatter_reduce_(0, kid_parent, cos, reduce="amin")

    quirk = (valid.sum(1) < 4) & (torch.arange(cells, device=device) > 0)
    quirk = quirk.index_select(0, active % cells)
    if not mask and bool(quirk.any()):
        worst = _stand_in_test(
            child_feats, pyr, lvl, active, quirk, kids, position, kid_parent, parent_norm, count, worst
        )
    if not bool(torch.isfinite(gram).all()):
        raise ValueError(_overflow(child_feats))
    return _LevelTest(worst, parent_norm, kids, kid_parent, kid_norm)


def _stand_in_test(
    child_feats: torch.Tensor,
    pyr: Pyramid,
    lvl: int,
    active: torch.Tensor,
    quirk: torch.Tensor,
    kids: torch.Tensor,
    position: torch.Tensor,
    kid_parent: torch.Tensor,
    parent_norm: torch.Tensor,
    count: torch.Tensor,
    worst: torch.Tensor,
) -> torch.Tensor:
    """``worst`` lowered, for the ``quirk`` parents, by their cosine with the frame's child cell 0.

    ``position``: ``[T*h2*w2]`` position in ``kids`` of each child cell (defined on ``kids``).

    Pairs (cell 0, child) for every child of such a parent, plus (cell 0, cell 0) for its norm,
    rows grouped by frame: ``p . c0 = sum_j c_j . c0 / k``.
    """
    cells2 = pyr.cells(lvl + 1)
    mark = torch.zeros(pyr.frames * cells2, dtype=torch.bool, device=active.device)
    quirk_kid = quirk.index_select(0, kid_parent)
    mark.index_fill_(0, torch.masked_select(kids, quirk_kid), True)
    mark.index_fill_(0, torch.masked_select(kids // cells2 * cells2, quirk_kid), True)
    col = torch.nonzero(mark).squeeze(1)
    stand_in = col // cells2 * cells2
    dots = pair_dots(child_feats, stand_in, child_feats, col)
    is_self = col == stand_in
    stand_in_norm = torch.zeros(pyr.frames, dtype=dots.dtype, device=dots.device)
    stand_in_norm.index_copy_(0, torch.masked_select(col, is_self) // cells2, torch.sqrt(dots[is_self]))
    parent = kid_parent.index_select(0, position.index_select(0, torch.masked_select(col, ~is_self)))
    dot = torch.zeros_like(parent_norm).index_add_(0, parent, torch.masked_select(dots, ~is_self)) / count
    den = parent_norm.clamp_min(EPS) * stand_in_norm.index_select(0, active // pyr.cells(lvl)).clamp_min(EPS)
    return torch.where(quirk, torch.minimum(worst, (dot / den).clamp(-1.0, 1.0)), worst)


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
    pyr: Pyramid,
    tau_s: float,
    mask_unused_slots: bool = False,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Coarse-to-fine quadtree search over all frames at once.

    Args:
        feats: per level ``[T*h*w, C]`` features from ``materialize``.
        pyr: the pyramid.
        tau_s: stop threshold (inclusive).
        mask_unused_slots: test only real children (the authors test unused slots against cell 0).

    Returns:
        Per level, the ``[E_l]`` increasing global cell indices emitted at that level, and per
        level ``[T*h*w]`` L2 norms, defined (not NaN) at least for every emitted cell.

    Raises:
        ValueError: norms or dot products of the (finite) features overflow their dtype.
    """
    active = torch.arange(feats[0].shape[0], device=feats[0].device)
    norms = [torch.full((f.shape[0],), math.nan, dtype=f.dtype, device=f.device) for f in feats]
    emitted = []
    for lvl in range(pyr.depth - 1):
        test = _level_test(feats[lvl + 1], pyr, lvl, active, mask_unused_slots)
        norms[lvl].index_copy_(0, active, test.parent_norm)
        norms[lvl + 1].index_copy_(0, test.kids, test.kid_norm)
        stop = test.worst >= tau_s
        emitted.append(torch.masked_select(active, stop))
        active = torch.masked_select(test.kids, ~stop.index_select(0, test.kid_parent))
    emitted.append(active)
    if pyr.depth == 1:  # the roots are the leaves: no stop test computed their norms
        with heavy_threads():
            norms[0] = torch.linalg.vector_norm(feats[0], dim=-1)
        if not bool(torch.isfinite(norms[0]).all()):
            raise ValueError(_overflow(feats[0]))
    return emitted, norms


def _overflow(feats: torch.Tensor) -> str:
    return f"feature norms overflow {feats.dtype} (max |feature| = {float(feats.abs().max()):.3g}); rescale the features"


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
