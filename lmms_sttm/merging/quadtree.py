"""Spatial merging of STTM: a per-frame quadtree search over a pooled feature pyramid.

Level sizes (authors' rule): start from the finest grid (H, W) and repeatedly halve both sides
with ceil, prepending each result, until either side equals 2. ``root_level`` indexes that list
(coarsest first); the working levels are ``sizes[root_level:]``, level 0 being the root.

Pooling one level coarser is separable along rows and columns. Along an axis of odd length the
*first* index is pooled alone and the rest in pairs (1-2, 3-4, ...); along an even axis indices
are paired (0-1, 2-3, ...). A coarse cell's feature is the plain mean of its 1, 2 or 4 children,
so odd grids give 1x2 / 2x1 stripes on the first row / column and a lone (0, 0) cell.

Coarse-to-fine search: every root cell of every frame is active. An active parent *stops* (is
emitted as one token) when the cosine similarity between its feature and each of its child
slots is >= tau_s; otherwise its children become active. Active cells of the finest level are
emitted as they are. Parents with fewer than four children have unused slots; the authors do not
mask them in the stop test, so those slots stand for the frame's top-left child cell (0, 0).
``mask_unused_slots=True`` tests only the real children.

Implementation: everything is vectorised over frames and cells; Python loops run over levels
only. Each level is mean-pooled from the next one through strided views (on CPU into a reusable
scratch buffer, see ``workspace``) and its L2 norms are taken once. A stop test needs one dot per
tested (parent, child) pair; those dots are computed for exactly those pairs by a sampled
dense-dense matmul over a CSR pattern (``pair_dots``): no dense all-pairs product, no gathered
copies of rows. On CPU, index bookkeeping runs single-threaded and the kernels over ``[*, C]``
features use all intra-op threads (``bookkeeping_threads``).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import torch

EPS = 1e-8
"""Norm floor of the cosine similarity, as in ``torch.nn.functional.cosine_similarity``."""

_HEAVY_THREADS: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "sttm_heavy_threads", default=None
)


@contextlib.contextmanager
def bookkeeping_threads(device: torch.device) -> Iterator[None]:
    """Run small index ops single-threaded on CPU; ``heavy_threads`` blocks get the original count.

    Index bookkeeping works on tensors of a few ten thousand elements, just above ATen's
    parallel grain size; on a shared CPU each such parallel op can wait a scheduler time slice
    for its second thread. Only the intra-op thread count is changed, and it is restored on exit.
    """
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads <= 1 or _HEAVY_THREADS.get() is not None:
        yield
        return
    token = _HEAVY_THREADS.set(threads)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        _HEAVY_THREADS.reset(token)


@contextlib.contextmanager
def heavy_threads() -> Iterator[None]:
    """All intra-op threads for a kernel over ``[*, C]`` features, inside ``bookkeeping_threads``."""
    threads = _HEAVY_THREADS.get()
    if threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


_LOCAL = threading.local()


def workspace(numel: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A flat ``[numel]`` scratch tensor; on CPU it is cached per thread and reused across calls.

    Fresh CPU allocations of this size (~100 MB for a 128-frame video) are paid in page faults
    on every call; the pooled pyramid levels live here instead. The contents are overwritten by
    the next call on the same thread and never escape a call. Other devices allocate normally
    (their caching allocators already reuse memory). ``release_workspace`` frees the cache.
    """
    if device.type != "cpu":
        return torch.empty(numel, dtype=dtype, device=device)
    buffer = getattr(_LOCAL, "buffer", None)
    if buffer is None or buffer.dtype != dtype or buffer.numel() < numel:
        _LOCAL.buffer = None  # free the old buffer first
        buffer = torch.empty(numel + numel // 4, dtype=dtype)  # untouched headroom costs no memory
        _LOCAL.buffer = buffer
    return buffer[:numel]


def release_workspace() -> None:
    """Free this thread's cached CPU scratch buffer."""
    _LOCAL.buffer = None


def level_sizes(height: int, width: int) -> list[tuple[int, int]]:
    """The authors' list of grid sizes, coarsest first, ending with ``(height, width)``.

    Halving stops as soon as either side equals 2 (a 1x1 grid, which never reaches 2, gives
    ``[(1, 1)]``). Example: 14x14 -> ``[(2, 2), (4, 4), (7, 7), (14, 14)]``.
    """
    h, w = height, width
    sizes = [(h, w)]
    while h != 2 and w != 2 and (h, w) != (1, 1):
        h, w = (h + 1) // 2, (w + 1) // 2
        sizes.insert(0, (h, w))
    return sizes


@dataclass(frozen=True)
class AxisPyramid:
    """One axis (rows or columns) of the pyramid; level 0 is the root, level L-1 the leaves.

    Attributes (lists indexed by level ``l``; ``n_l`` cells at level ``l``, ``n`` leaves):
        lengths: ``n_l`` per level.
        lo, hi: ``[n_l]`` int64, leaf span ``[lo, hi)`` of each cell.
        first, count: ``[n_l]`` int64 for ``l < L-1``: first child index at level ``l+1`` and
            number of children (1 or 2).
        anc: ``[n]`` int64, the level-``l`` ancestor of each leaf.
        weight: ``[n]`` float64, the weight of each leaf in its level-``l`` ancestor's mean.
    """

    lengths: list[int]
    lo: list[torch.Tensor]
    hi: list[torch.Tensor]
    first: list[torch.Tensor]
    count: list[torch.Tensor]
    anc: list[torch.Tensor]
    weight: list[torch.Tensor]


def axis_pyramid(lengths: list[int], device: torch.device) -> AxisPyramid:
    """Build the tables of one axis from its per-level lengths (root first)."""
    depth = len(lengths)
    n = lengths[-1]
    leaf = torch.arange(n, device=device)
    lo, hi, anc = [leaf] * depth, [leaf + 1] * depth, [leaf] * depth
    weight = [torch.ones(n, dtype=torch.float64, device=device)] * depth
    first: list[torch.Tensor] = [leaf] * (depth - 1)
    count: list[torch.Tensor] = [leaf] * (depth - 1)
    for lvl in range(depth - 2, -1, -1):
        m, odd = lengths[lvl + 1], lengths[lvl + 1] % 2
        if lengths[lvl] != (m + 1) // 2:
            raise AssertionError(f"inconsistent pyramid lengths {lengths}")
        i = torch.arange(lengths[lvl], device=device)
        f = (2 * i - odd).clamp_min(0)
        last = 2 * i + 1 - odd
        first[lvl], count[lvl] = f, last - f + 1
        lo[lvl], hi[lvl] = lo[lvl + 1].index_select(0, f), hi[lvl + 1].index_select(0, last)
        parent = (torch.arange(m, device=device) + odd) // 2
        anc[lvl] = parent.index_select(0, anc[lvl + 1])
        weight[lvl] = weight[lvl + 1] / count[lvl].index_select(0, anc[lvl])
    return AxisPyramid(list(lengths), lo, hi, first, count, anc, weight)


@dataclass(frozen=True)
class Pyramid:
    """The working levels of a ``T x H x W`` grid (root first) and their row/column tables."""

    frames: int
    sizes: list[tuple[int, int]]
    rows: AxisPyramid
    cols: AxisPyramid

    @property
    def depth(self) -> int:
        return len(self.sizes)

    def cells(self, lvl: int) -> int:
        """Cells per frame at level ``lvl``."""
        h, w = self.sizes[lvl]
        return h * w

    def child_slots(self, lvl: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Children of every level-``lvl`` cell: ``([h*w, 4] child cell in frame, [h*w, 4] valid)``.

        Slot ``2*dy + dx``; invalid slots point to child cell 0 (the top-left one).
        """
        w2 = self.sizes[lvl + 1][1]
        fy, cy = self.rows.first[lvl], self.rows.count[lvl]
        fx, cx = self.cols.first[lvl], self.cols.count[lvl]
        d = torch.tensor([0, 1], device=fy.device)
        ry = fy[:, None, None, None] + d[None, :, None, None]  # [h, 2(dy), 1, 1]
        rx = fx[None, None, :, None] + d[None, None, None, :]  # [1, 1, w, 2(dx)]
        vy = d[None, :, None, None] < cy[:, None, None, None]
        vx = d[None, None, None, :] < cx[None, None, :, None]
        valid = (vy & vx).permute(0, 2, 1, 3).reshape(-1, 4)
        child = (ry * w2 + rx).permute(0, 2, 1, 3).reshape(-1, 4)
        return torch.where(valid, child, torch.zeros_like(child)), valid

    def leaf_ancestor(self, lvl: int) -> torch.Tensor:
        """``[T*H*W]`` global level-``lvl`` cell index of every leaf."""
        h, w = self.sizes[lvl]
        t = torch.arange(self.frames, device=self.rows.anc[lvl].device)
        ay, ax = self.rows.anc[lvl], self.cols.anc[lvl]
        return ((t[:, None, None] * h + ay[None, :, None]) * w + ax[None, None, :]).reshape(-1)

    def leaf_weight(self, lvl: int) -> torch.Tensor:
        """``[H*W]`` float64 weight of each leaf in its level-``lvl`` ancestor's mean."""
        return (self.rows.weight[lvl][:, None] * self.cols.weight[lvl][None, :]).reshape(-1)


def build_pyramid(frames: int, height: int, width: int, root_level: int, device: torch.device) -> Pyramid:
    """Working levels ``level_sizes(height, width)[root_level:]`` and their tables."""
    sizes = level_sizes(height, width)
    if not 0 <= root_level < len(sizes):
        raise ValueError(
            f"root_level={root_level} is out of range for a {height}x{width} grid, whose level list is "
            f"{sizes} (valid root levels: 0..{len(sizes) - 1}); the grid is smaller than the requested root"
        )
    sizes = sizes[root_level:]
    rows = axis_pyramid([s[0] for s in sizes], device)
    cols = axis_pyramid([s[1] for s in sizes], device)
    return Pyramid(frames, sizes, rows, cols)


def pool_level(child: torch.Tensor, pyr: Pyramid, lvl: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """Mean-pool level ``lvl+1`` features ``[T*h2*w2, C]`` into level ``lvl`` features ``[T*h*w, C]``.

    Written into ``out`` (``[T*h*w, C]``, contiguous) when given. One 2x2 average pooling with
    stride 2, padded by one row (column) on top (left) when the height (width) is odd and with
    padding excluded from the counts: the first row (column) then pools in 1x2 (2x1) stripes,
    the corner cell alone, everything else in 2x2 blocks, exactly as the authors' pooling.
    """
    t_count, channels = pyr.frames, child.shape[1]
    h, w = pyr.sizes[lvl]
    h2, w2 = pyr.sizes[lvl + 1]
    if out is None:
        out = torch.empty(t_count * h * w, channels, dtype=child.dtype, device=child.device)
    fine = child.view(t_count, h2, w2, channels).permute(0, 3, 1, 2)  # NCHW view, channels last
    coarse = out.view(t_count, h, w, channels).permute(0, 3, 1, 2)
    with heavy_threads():
        torch.ops.aten.avg_pool2d.out(fine, [2, 2], [2, 2], [h2 % 2, w2 % 2], False, False, None, out=coarse)
    return out


def pair_dots(a: torch.Tensor, ia: torch.Tensor, b: torch.Tensor, ib: torch.Tensor) -> torch.Tensor:
    """``[L]`` dot products ``a[ia[k]] . b[ib[k]]`` of rows of ``a [Na, C]`` and ``b [Nb, C]``.

    The pairs must be sorted by ``ia`` (then by ``ib``). Only those pairs are
    computed (sampled dense-dense matmul over a CSR pattern), without gathering rows. Devices other
    than CPU/CUDA and dtypes other than float32/float64 fall back to gathering rows.
    """
    if ia.numel() == 0:
        return torch.zeros(0, dtype=a.dtype, device=a.device)
    if a.device.type not in ("cpu", "cuda") or a.dtype not in (torch.float32, torch.float64):
        with heavy_threads():
            return (a.index_select(0, ia) * b.index_select(0, ib)).sum(-1)
    crow = torch.zeros(a.shape[0] + 1, dtype=torch.int64, device=a.device)
    crow[1:] = torch.cumsum(torch.bincount(ia, minlength=a.shape[0]), 0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse CSR tensor support is in beta.*")
        pattern = torch.sparse_csr_tensor(
            crow,
            ib,
            torch.zeros(ib.shape[0], dtype=a.dtype, device=a.device),
            size=(a.shape[0], b.shape[0]),
            check_invariants=False,
        )
        with heavy_threads():  # in place: no copy of the pattern's values
            return torch.sparse.sampled_addmm(pattern, a, b.t(), beta=0.0, out=pattern).values()


def pair_cosine(
    a: torch.Tensor, na: torch.Tensor, ia: torch.Tensor, b: torch.Tensor, nb: torch.Tensor, ib: torch.Tensor
) -> torch.Tensor:
    """``[L]`` cosine similarities of row pairs (sorted as for ``pair_dots``), given row norms; in [-1, 1]."""
    dots = pair_dots(a, ia, b, ib)
    den = na.index_select(0, ia).clamp_min(EPS) * nb.index_select(0, ib).clamp_min(EPS)
    return (dots / den).clamp(-1.0, 1.0)


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


def _stop(
    feats: list[torch.Tensor],
    norms: list[torch.Tensor],
    pyr: Pyramid,
    lvl: int,
    active: torch.Tensor,
    tau_s: float,
    mask: bool,
) -> torch.Tensor:
    """``[n]`` stop decision of the ``active`` level-``lvl`` parents (increasing global cells).

    One dot per tested (parent, child slot) pair, computed only for those pairs; cosines use the
    precomputed norms. Pairs come parent by parent with children in increasing order.
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
    return worst.scatter_(0, pick, sims).view(-1, 5).amin(1) >= tau_s


def _children(pyr: Pyramid, lvl: int, parents: torch.Tensor) -> torch.Tensor:
    """Increasing global level-``lvl+1`` cells that are children of the level-``lvl`` ``parents``."""
    slots, valid = pyr.child_slots(lvl)
    cells, cells2 = pyr.cells(lvl), pyr.cells(lvl + 1)
    local = parents % cells
    child = slots.index_select(0, local) + (parents // cells * cells2)[:, None]
    mark = torch.zeros(pyr.frames * cells2, dtype=torch.bool, device=parents.device)
    mark.index_fill_(0, torch.masked_select(child, valid.index_select(0, local)), True)
    return torch.nonzero(mark).squeeze(1)


def materialize(leaves: torch.Tensor, pyr: Pyramid) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per level (root first, leaves last) features ``[T*h*w, C]`` and L2 norms ``[T*h*w]``.

    Each level is mean-pooled from the next finer one (``pool_level``) into one scratch buffer
    (``workspace``); ``leaves`` is ``[N, C]`` and is the last level itself.
    """
    channels = leaves.shape[1]
    rows = [pyr.frames * pyr.cells(lvl) for lvl in range(pyr.depth - 1)]
    buffer = workspace(sum(rows) * channels, leaves.dtype, leaves.device)
    feats, start = [], 0
    for n in rows:
        feats.append(buffer[start : start + n * channels].view(n, channels))
        start += n * channels
    feats.append(leaves)
    for lvl in range(pyr.depth - 2, -1, -1):
        pool_level(feats[lvl + 1], pyr, lvl, out=feats[lvl])
    with heavy_threads():
        norms = [torch.linalg.vector_norm(f, dim=-1) for f in feats]
    return feats, norms


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
        stop = _stop(feats, norms, pyr, lvl, active, tau_s, mask_unused_slots)
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
