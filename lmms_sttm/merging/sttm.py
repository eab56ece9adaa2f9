"""Public entry point of STTM merging: ``merge_video(x, tau_s, tau_t, root_level=1, ...) -> Reduction``.

Pipeline (all vectorised, pure torch, on the device of ``x``):
  1. pyramid: every level mean-pooled from the next finer one, with L2 norms (``pyramid.materialize``);
  2. spatial: per-frame quadtree search (``quadtree.search``), nodes in raster order of their
     top-left corners, earlier frames first (``quadtree.spatial_nodes``);
  3. temporal: group nested, similar nodes of consecutive frames (``temporal.temporal_groups``);
  4. output: one token per group at its representative (smallest node index), with the mean of
     the member node features, the summed patch counts and the representative's rectangle.

Paper protocol by default: the authors' union-find stopping rule (``union_find="authors"``) and
their arithmetic dtype (``merge_dtype="input"``): for bfloat16/float16 input every level is
pooled in the input dtype, as theirs is, and similarities are computed in float32 from those
pooled features, so every stop and link decision sees their numbers. ``union_find="components"``
gives exact connected components, ``merge_dtype="float32"`` pools in float32 (float64 input
always works in float64). Output features are cast back to ``x.dtype``. A node's feature is the hierarchical mean
of its leaves, so each output feature is a fixed weighted sum of original tokens; it is computed
from the original tokens in one bag-sum pass, into memory reused across calls on CPU
(``buffers.output_tensor``).
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F

from lmms_sttm.merging.buffers import output_tensor, workspace
from lmms_sttm.merging.pyramid import Pyramid, build_pyramid, materialize
from lmms_sttm.merging.quadtree import SpatialNodes, search, spatial_nodes
from lmms_sttm.merging.reduction import Reduction
from lmms_sttm.merging.temporal import UNION_FIND, temporal_groups
from lmms_sttm.merging.threads import bookkeeping_threads, heavy_threads

MERGE_DTYPES = ("input", "float32")
"""Accepted ``merge_dtype`` values of ``merge_video``."""

_CHUNK_BYTES = 2 << 20
"""Output bytes per chunk of bag sums on CPU (the chunk's sums stay in cache until copied)."""


def check_inputs(
    x: object, tau_s: object, tau_t: object, root_level: object, union_find: object, merge_dtype: object
) -> None:
    """Raises ``TypeError``/``ValueError`` for arguments ``merge_video`` does not accept (see there)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor of shape [T, H, W, C], got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(
            f"x must have shape [T, H, W, C] (rank 4), got rank {x.dim()} shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise TypeError(f"x must have a floating-point dtype, got {x.dtype}")
    if x.numel() == 0:
        raise ValueError(f"empty video: x has shape {tuple(x.shape)}; T, H, W and C must all be >= 1")
    for name, tau in (("tau_s", tau_s), ("tau_t", tau_t)):
        if isinstance(tau, bool) or not isinstance(tau, numbers.Real):
            raise TypeError(f"{name} must be a real number, got {type(tau).__name__}")
        if math.isnan(float(tau)):
            raise ValueError(f"{name} must not be NaN")
    if isinstance(root_level, bool) or not isinstance(root_level, numbers.Integral):
        raise TypeError(f"root_level must be an int, got {type(root_level).__name__}")
    if union_find not in UNION_FIND:
        raise ValueError(f"union_find={union_find!r} is not accepted; use one of {list(UNION_FIND)}")
    if merge_dtype not in MERGE_DTYPES:
        raise ValueError(f"merge_dtype={merge_dtype!r} is not accepted; use one of {list(MERGE_DTYPES)}")


def _check_finite(x: torch.Tensor, root_norms: torch.Tensor) -> None:
    """Raise if a token is non-finite (its root's norm then is too) or if a norm overflows."""
    if bool(torch.isfinite(root_norms).all()):
        return
    bad = torch.nonzero(~torch.isfinite(x).all(-1).view(-1)).squeeze(1)
    if bad.numel() == 0:
        raise ValueError(
            f"feature norms overflow {x.dtype} (max |x| = {float(x.abs().max()):.3g}); rescale the features"
        )
    first = int(bad[0])
    _, h, w, _ = x.shape
    raise ValueError(
        f"x contains non-finite values (NaN or Inf) in {bad.numel()} token(s), "
        f"first at (t, y, x) = ({first // (h * w)}, {first % (h * w) // w}, {first % w})"
    )


def _token_features(
    leaves: torch.Tensor,
    nodes: SpatialNodes,
    pyr: Pyramid,
    group: torch.Tensor,
    member_weight: torch.Tensor,
    num_patches: torch.Tensor,
    dtype: torch.dtype,
) -> torch.Tensor:
    """``[N', C]`` output features (``dtype``): per group, the weighted sum of its member nodes' mean features.

    Args:
        leaves: ``[N, C]`` original tokens (work dtype).
        nodes: the spatial nodes; ``group``: ``[S]`` group label (smallest member) of each node.
        member_weight: ``[S]`` float64 weight of each node within its group (summing to 1).
        num_patches: ``[N']`` leaves per group, groups in order of their labels.

    Each node's feature is a fixed weighted mean of its leaves, so every output token is a
    weighted sum of original tokens, computed in one bag-sum pass over ``leaves``. Bags are the
    groups in order; a bag lists its member nodes' leaves (node rectangles enumerated row-major).
    """
    num_leaves = leaves.shape[0]
    width = pyr.sizes[-1][1]
    device = leaves.device
    merged = bool((group != torch.arange(group.shape[0], device=device)).any())
    node_order = (
        torch.sort(group, stable=True).indices if merged else torch.arange(group.shape[0], device=device)
    )
    area = nodes.num_patches.index_select(0, node_order)
    start = torch.cumsum(area, 0) - area
    marker = torch.zeros(num_leaves, dtype=torch.int64, device=device).index_fill_(0, start[1:], 1)
    position = torch.cumsum(marker, 0)  # [N] position in node_order of the node owning each slot
    node = node_order.index_select(0, position)
    offset = torch.arange(num_leaves, device=device) - start.index_select(0, position)
    node_width = (nodes.tlbr[:, 4] - nodes.tlbr[:, 2]).index_select(0, node)
    leaf = nodes.rep_leaf.index_select(0, node) + offset // node_width * width + offset % node_width
    hw = pyr.cells(pyr.depth - 1)
    per_level = torch.stack([pyr.leaf_weight(lvl) for lvl in range(pyr.depth)]).view(-1)  # [depth * H*W]
    weight = per_level.index_select(0, nodes.level.index_select(0, node) * hw + leaf % hw)
    weight = (weight * member_weight.index_select(0, node)).to(leaves.dtype)
    offsets = torch.cumsum(num_patches, 0) - num_patches
    return _bag_sums(
        leaves, leaf, weight, offsets, output_tensor(num_patches.shape[0], leaves.shape[1], dtype, device)
    )


def _bag_sums(
    table: torch.Tensor, index: torch.Tensor, weight: torch.Tensor, offsets: torch.Tensor, out: torch.Tensor
) -> torch.Tensor:
    """``out [B, C]`` (any float dtype) filled with the weighted bag sums of rows of ``table [R, C]``.

    Bag ``b`` is ``index[offsets[b]:offsets[b+1]]`` with those ``weight`` s. On CPU the bags go in
    chunks of ~2 MiB of output whose sums stay in cache before they are copied into ``out``
    (``out`` may be reused memory, see ``buffers.output_tensor``); elsewhere in one call.
    """
    num_bags, channels = out.shape
    step = max(1, _CHUNK_BYTES // (channels * table.element_size())) if out.device.type == "cpu" else num_bags
    bounds = torch.cat([offsets, offsets.new_tensor([index.shape[0]])]).tolist()
    with heavy_threads():
        for b0 in range(0, num_bags, step):
            b1 = min(num_bags, b0 + step)
            lo, hi = bounds[b0], bounds[b1]
            sums = F.embedding_bag(
                index[lo:hi], table, offsets[b0:b1] - lo, mode="sum", per_sample_weights=weight[lo:hi]
            )
            out[b0:b1].copy_(sums)
    return out


def pyramid_features(
    x: torch.Tensor, root_level: int, merge_dtype: str
) -> tuple[Pyramid, torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """The pyramid of validated ``x [T, H, W, C]``: ``(pyr, leaves [N, C], feats, norms)``.

    ``leaves`` is ``x`` in the work dtype (float32, or float64 for float64 input); ``feats`` and
    ``norms`` are per level (root first) ``[T*h*w, C]`` and ``[T*h*w]`` (``materialize``), pooled
    in the input dtype when ``merge_dtype="input"`` and ``x`` is bfloat16/float16. ``leaves`` and
    the pooled levels may live in scratch memory that the next call reuses. Raises ``ValueError``
    on non-finite features.
    """
    frames, height, width, channels = x.shape
    pyr = build_pyramid(frames, height, width, root_level, x.device)
    work = torch.float64 if x.dtype == torch.float64 else torch.float32
    if x.dtype == work and x.is_contiguous():
        leaves = x.view(frames * height * width, channels)
    else:  # converted into scratch memory: no fresh allocation to fault in on every call
        leaves = workspace("leaves", x.numel(), work, x.device).view(frames * height * width, channels)
        with heavy_threads():
            leaves.view(x.shape).copy_(x)
    low = None
    if merge_dtype == "input" and x.dtype.itemsize < work.itemsize:  # the authors pool bf16 in bf16
        low = x.reshape(frames * height * width, channels)
    feats, norms = materialize(leaves, pyr, low)
    _check_finite(x, norms[0])  # a non-finite token makes its root's norm non-finite
    return pyr, leaves, feats, norms


def merge_video(
    x: torch.Tensor,
    tau_s: float,
    tau_t: float,
    root_level: int = 1,
    *,
    mask_unused_slots: bool = False,
    best_partner: bool = False,
    weighted: bool = False,
    union_find: str = "authors",
    merge_dtype: str = "input",
) -> Reduction:
    """Merge the visual tokens of one video with STTM (spatial quadtree, then temporal linking).

    Args:
        x: ``[T, H, W, C]`` token features of one video (any float dtype, any device).
        tau_s: spatial threshold; a quadtree parent stops when its cosine similarity to each of
            its child slots is >= tau_s. ``tau_s > 1`` keeps every original token.
        tau_t: temporal threshold; nested nodes of consecutive frames are linked when their
            cosine similarity is >= tau_t. ``tau_t <= 0`` disables temporal merging.
        root_level: index of the root in the level list (``pyramid.level_sizes``); 1 = 4x4
            root for 14x14 frames.
        mask_unused_slots: test only real children in the spatial stop test (the authors also
            compare stripe nodes with the frame's top-left child cell).
        best_partner: keep for each node of frame t+1 only its most similar linked node of frame t.
        weighted: average the members of a temporal group weighted by their patch counts
            (default: plain mean of the member node features).
        union_find: ``"authors"`` (default) replicates the authors' union-find rounds and stopping
            rule, which may stop before every linked pair is joined; ``"components"`` groups
            exact connected components.
        merge_dtype: ``"input"`` (default) pools the pyramid of a bfloat16/float16 input in that
            dtype, as the authors' computation does; ``"float32"`` pools in float32 throughout.

    Returns:
        A ``Reduction`` over the ``T*H*W`` original tokens, kept tokens in raster order of their
        representative's top-left corner, earlier frames first. No gradients flow through it.

    Raises:
        TypeError: ``x`` is not a float tensor, or a threshold/root level has the wrong type.
        ValueError: wrong rank, empty video, non-finite features, NaN threshold, a grid too
            small for ``root_level``, or an unknown ``union_find``/``merge_dtype``.
    """
    check_inputs(x, tau_s, tau_t, root_level, union_find, merge_dtype)
    with torch.no_grad(), bookkeeping_threads(x.device):
        return _merge(
            x,
            float(tau_s),
            float(tau_t),
            int(root_level),
            mask_unused_slots,
            best_partner,
            weighted,
            union_find,
            merge_dtype,
        )


def _merge(
    x: torch.Tensor,
    tau_s: float,
    tau_t: float,
    root_level: int,
    mask_unused_slots: bool,
    best_partner: bool,
    weighted: bool,
    union_find: str,
    merge_dtype: str,
) -> Reduction:
    """``merge_video`` on validated arguments (see there)."""
    frames = x.shape[0]
    pyr, leaves, feats, norms = pyramid_features(x, root_level, merge_dtype)
    nodes = spatial_nodes(search(feats, norms, pyr, tau_s, mask_unused_slots), pyr)
    group = temporal_groups(nodes, feats, norms, frames, tau_t, best_partner, union_find)
    return build_plan(leaves, pyr, nodes, group, weighted, x.dtype)


def build_plan(
    leaves: torch.Tensor,
    pyr: Pyramid,
    nodes: SpatialNodes,
    group: torch.Tensor,
    weighted: bool,
    dtype: torch.dtype,
) -> Reduction:
    """The ``Reduction`` of spatial ``nodes`` grouped by ``group`` (``[S]`` smallest member node of each).

    ``leaves``: ``[N, C]`` original tokens in the work dtype; output features in ``dtype``.
    """
    node = torch.arange(group.shape[0], device=group.device)
    kept = group == node
    out_of_node = (torch.cumsum(kept, 0) - 1).index_select(0, group)
    num_kept = int(kept.sum())
    area = nodes.num_patches
    num_patches = torch.zeros(num_kept, dtype=torch.int64, device=area.device).scatter_add_(
        0, out_of_node, area
    )
    if weighted:
        member_weight = area.double() / num_patches.index_select(0, out_of_node).double()
    else:
        members = torch.zeros_like(num_patches).scatter_add_(0, out_of_node, torch.ones_like(area))
        member_weight = 1.0 / members.index_select(0, out_of_node).double()
    features = _token_features(leaves, nodes, pyr, group, member_weight, num_patches, dtype)

    def carry(values: torch.Tensor) -> torch.Tensor:  # the same bag sums over another tensor's leaves
        work = torch.float64 if values.dtype == torch.float64 else torch.float32
        side = values.to(device=leaves.device, dtype=work).contiguous()
        return _token_features(side, nodes, pyr, group, member_weight, num_patches, values.dtype).clone()

    return Reduction(
        features=features,
        num_patches=num_patches,
        tlbr=nodes.tlbr.index_select(0, torch.nonzero(kept).squeeze(1)),
        token_map=out_of_node.index_select(0, nodes.leaf_node),
        rep_index=torch.masked_select(nodes.rep_leaf, kept),
        grid=(pyr.frames, *pyr.sizes[-1]),
        carry=carry,
    )


class SttmReducer:
    """STTM (quadtree spatial + union-find temporal merging) as a reducer.

    ``(hidden [T*H*W, C], grid) -> merge_video(x [T, H, W, C], tau_s, tau_t, root_level, union_find,
    merge_dtype)`` (defaults: the authors' union-find and arithmetic dtype).
    """

    def __init__(
        self,
        tau_s: float,
        tau_t: float,
        root_level: int = 1,
        union_find: str = "authors",
        merge_dtype: str = "input",
    ) -> None:
        self.tau_s = float(tau_s)
        self.tau_t = float(tau_t)
        self.root_level = int(root_level)
        self.union_find = union_find
        self.merge_dtype = merge_dtype

    def __call__(self, hidden: torch.Tensor, grid: tuple[int, int, int]) -> Reduction:
        t, h, w = grid
        x = hidden.reshape(t, h, w, hidden.shape[-1])
        return merge_video(
            x,
            self.tau_s,
            self.tau_t,
            root_level=self.root_level,
            union_find=self.union_find,
            merge_dtype=self.merge_dtype,
        )

    def __repr__(self) -> str:
        return (
            f"SttmReducer(tau_s={self.tau_s}, tau_t={self.tau_t}, root_level={self.root_level}, "
            f"union_find={self.union_find!r}, merge_dtype={self.merge_dtype!r})"
        )
