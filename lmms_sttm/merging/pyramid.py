"""The pooled feature pyramid of STTM: level sizes, per-axis tables, pooling and norms.

Level sizes (authors' rule): start from the finest grid (H, W) and repeatedly halve both sides
with ceil, prepending each result, until either side equals 2. ``root_level`` indexes that list
(coarsest first); the working levels are ``sizes[root_level:]``, level 0 being the root.

Pooling one level coarser is separable along rows and columns. Along an axis of odd length the
*first* index is pooled alone and the rest in pairs (1-2, 3-4, ...); along an even axis indices
are paired (0-1, 2-3, ...). A coarse cell's feature is the plain mean of its 1, 2 or 4 children,
so odd grids give 1x2 / 2x1 stripes on the first row / column and a lone (0, 0) cell.

Each level is mean-pooled from the next one through strided views (on CPU into a reusable
scratch buffer, see ``buffers.workspace``) and its L2 norms are taken once (``materialize``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from lmms_sttm.merging.buffers import workspace
from lmms_sttm.merging.threads import heavy_threads


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
    _memo: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def depth(self) -> int:
        return len(self.sizes)

    def cells(self, lvl: int) -> int:
        """Cells per frame at level ``lvl``."""
        h, w = self.sizes[lvl]
        return h * w

    def child_slots(self, lvl: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Children of every level-``lvl`` cell: ``([h*w, 4] child cell in frame, [h*w, 4] valid)``.

        Slot ``2*dy + dx``; invalid slots point to child cell 0 (the top-left one). Memoised.
        """
        if lvl not in self._memo:
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
            self._memo[lvl] = (torch.where(valid, child, torch.zeros_like(child)), valid)
        return self._memo[lvl]

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


def materialize(
    leaves: torch.Tensor, pyr: Pyramid, low: torch.Tensor | None = None
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per level (root first, leaves last) features ``[T*h*w, C]`` and L2 norms ``[T*h*w]``.

    Each level is mean-pooled from the next finer one (``pool_level``) into one scratch buffer
    (``workspace``); ``leaves`` is ``[N, C]`` and is the last level itself. With ``low`` (the same
    ``[N, C]`` tokens, contiguous, in bfloat16/float16) the levels are pooled in that dtype, as
    the authors' pooling in the input dtype does (a mean of 1, 2 or 4 values accumulated in float
    and rounded once per level), then widened to ``leaves.dtype``.
    """
    channels = leaves.shape[1]
    rows = [pyr.frames * pyr.cells(lvl) for lvl in range(pyr.depth - 1)]
    buffer = workspace("pyramid", sum(rows) * channels, leaves.dtype, leaves.device)
    narrow = None if low is None else workspace("pyramid_low", sum(rows) * channels, low.dtype, low.device)
    feats, pooled, start = [], [], 0
    for n in rows:
        feats.append(buffer[start : start + n * channels].view(n, channels))
        if narrow is not None:
            pooled.append(narrow[start : start + n * channels].view(n, channels))
        start += n * channels
    feats.append(leaves)
    if narrow is None:
        for lvl in range(pyr.depth - 2, -1, -1):
            pool_level(feats[lvl + 1], pyr, lvl, out=feats[lvl])
    else:
        pooled.append(low)
        for lvl in range(pyr.depth - 2, -1, -1):
            pool_level(pooled[lvl + 1], pyr, lvl, out=pooled[lvl])
        with heavy_threads():
            buffer.copy_(narrow)
    with heavy_threads():
        norms = [torch.linalg.vector_norm(f, dim=-1) for f in feats]
    return feats, norms
