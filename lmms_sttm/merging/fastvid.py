"""FastVID (Shen et al., NeurIPS 2025; github.com/LunarShen/FastVID): dynamic temporal segmentation,
then density-based spatio-temporal pruning inside each segment.

For ``hidden [T*H*W, C]`` (``F = H*W`` tokens per frame) and the settings ``ratio`` (retention),
``c``, ``tau`` (segmentation), ``d`` (context share), ``p`` (context frame stride), ``beta``:

1. **DySeg.** Frame features ``g_t`` (L2-normalised); ``s_i = g_i . g_{i+1}``. A segment ends after
   frame ``i`` when ``s_i`` is among the ``c - 1`` smallest (ties: lower ``i``) or ``s_i < tau``.
2. **Budgets.** ``m = int(F * ratio)`` per frame; a segment of ``L`` frames keeps ``L*m`` tokens:
   ``K_c = int(L*m*d)`` context and ``K_s = L*m - K_c`` salient ones. ``L = 1``: the frame gets both.
   Otherwise the salient ones are split evenly over the frames (the first ``K_s mod L`` get one
   more) and the context ones evenly over ``ceil(L / p)`` chunks (the first get one more); counting
   from the segment's *last* frame, every ``p``-th frame is a context frame and gets the next chunk.
3. **Salient tokens.** Per frame, the tokens of highest saliency (ties: lower index).
4. **Context tokens (DPC-kNN).** Among a context frame's other tokens: distances
   ``|x_i - x_j| / sqrt(C)``, density ``rho_i = exp(-mean of the squared distances to its 4 nearest
   (itself included))``, ``delta_i`` = distance to the nearest token of higher density (none: the
   largest distance of the frame); the tokens of largest ``rho * delta`` are the context tokens.
5. **Merging.** For each context frame, every token of its segment that is neither salient nor one
   of *this frame's* context tokens (other frames' context tokens included) goes to its most
   cosine-similar context token of this frame; a context token that received ``n > 0`` tokens
   becomes ``w * itself + (1 - w) * mean(received)``, ``w = max(1/(n+1), beta)``.

The authors ship three variants; this is their LLaVA-Video code (``fastvid_llavavideo``), run on
every family. Their LLaVA-OneVision code is a batched variant (the same salient count in every
frame, context counts spread per frame before the segments' chunks) and their Qwen2.5-VL code adds
a second cut threshold inside segments (``fastvid_DySeg_ignore``) and caps a context frame at half
its tokens; neither is reproduced here.

Kept tokens (salient ones unchanged, context ones merged) come out in raster order; positions: the
authors give survivors their original position ids on every family (``position_rule="original"``).
In the plan a dropped token is counted with its context token in the context frame nearest in time
(ties: the earlier), or, in a segment without context tokens, with the nearest kept token before it.

Inputs the authors take from the vision tower. ``saliency [T, H*W]``: on Qwen2.5-VL the attention
of each frame's mean query (last vision block, keys averaged per 2 x 2 merge unit); on LLaVA the
attention of SigLIP's pooling head (a learned probe query) pooled to the LLM grid. The engine gives
it as ``vision_scores`` (``models/vision_attention.py``, kind ``frame_query``: the Qwen2.5-VL
computation on every Qwen; on LLaVA and InternVL, whose checkpoints have no pooling head, the
frame-mean query at the feature layer). ``frame_features [T, C']``: on LLaVA the pooling head's
output, on Qwen2.5-VL the frame mean of the LLM-input features; here always the frame mean.
Without vision scores (stored features, no model) ``saliency`` falls back to a stand-in, each
token's dot product with its frame mean (``default_saliency``: the frame-mean query's attention
order without the ViT's projections).

The authors add ``U(0, 1e-6)`` noise to the densities (to break ties); here ties go to the lower index, without noise. Generalised beyond the authors' code: ``c - 1`` is
capped at ``T - 1``, at most 4 neighbours are used in a frame of fewer tokens, and a frame's counts
are capped at its tokens (``min(K, F)`` salient, context at most the rest; the authors' LLaVA code
raises there, e.g. ``ratio = 0.5`` with a 4-frame segment).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lmms_sttm.merging.groups import Grid, previous_kept_parent, unit_rects
from lmms_sttm.merging.reduction import Reduction

NEIGHBOURS = 4


@dataclass(frozen=True)
class FastVidParams:
    """The authors' settings (their LLaVA defaults: ratio 0.10, c 8, tau 0.9, d 0.4, p 4, beta 0.6)."""

    ratio: float = 0.10
    c: int = 8
    tau: float = 0.9
    d: float = 0.4
    p: int = 4
    beta: float = 0.6


def segment_sizes(frame_features: torch.Tensor, c: int, tau: float) -> list[int]:
    """``frame_features [T, C]`` -> frames per segment (DySeg), in order."""
    t = frame_features.shape[0]
    if t == 1:
        return [1]
    g = F.normalize(frame_features.float(), dim=-1)
    sim = (g[:-1] * g[1:]).sum(dim=1)  # [T-1]
    cuts = set(torch.argsort(sim, stable=True)[: max(0, min(c - 1, t - 1))].tolist())
    cuts |= set(torch.nonzero(sim < tau).squeeze(1).tolist())
    bounds = [-1, *sorted(cuts), t - 1]
    return [b - a for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


def frame_counts(length: int, per_frame: int, d: float, p: int, tokens: int) -> tuple[list[int], list[int]]:
    """Salient and context tokens of each frame of a ``length``-frame segment (capped at ``tokens``)."""
    total = per_frame * length
    ctx_total = int(total * d)
    sal_total = total - ctx_total
    if length == 1:
        sal, ctx = [sal_total], [ctx_total]
    else:
        sal = [sal_total // length + (i < sal_total % length) for i in range(length)]
        chunks = math.ceil(length / p)
        chunk = [ctx_total // chunks + (j < ctx_total % chunks) for j in range(chunks)]
        ctx = [chunk[(length - 1 - i) // p] if (length - 1 - i) % p == 0 else 0 for i in range(length)]
    sal = [min(s, tokens) for s in sal]
    ctx = [min(k, tokens - s) for s, k in zip(sal, ctx, strict=True)]
    return sal, ctx


def default_saliency(frames: torch.Tensor) -> torch.Tensor:
    """``frames [T, F, C]`` -> ``[T, F]`` float32: each token's dot product with its frame mean."""
    x = frames.float()
    return (x * x.mean(dim=1, keepdim=True)).sum(dim=-1)


def _descending_rank(score: torch.Tensor) -> torch.Tensor:
    """Rank along the last dim, 0 = largest (ties: lower index first)."""
    order = torch.argsort(-score, dim=-1, stable=True)
    return torch.argsort(order, dim=-1)


def dpc_scores(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Density-peak scores ``rho * delta`` of the valid tokens of each frame.

    Args:
        x: ``[B, F, C]`` features; valid: ``[B, F]`` bool (the candidates of each frame).

    Returns:
        ``[B, F]`` float32; ``-inf`` on invalid tokens.
    """
    x = x.float()
    dist = torch.cdist(x, x) / math.sqrt(x.shape[-1])  # [B, F, F]
    pair = valid[:, :, None] & valid[:, None, :]
    inf = torch.tensor(float("inf"), device=x.device)
    k = min(NEIGHBOURS, x.shape[1])
    near = torch.where(pair, dist, inf).topk(k, dim=-1, largest=False).values  # [B, F, k]
    count = valid.sum(dim=1).clamp(min=1)  # neighbours available per frame
    k_eff = count.clamp(max=k)[:, None, None]
    slot = torch.arange(k, device=x.device)[None, None, :]
    near = torch.where(slot < k_eff, near, torch.zeros_like(near))
    rho = torch.exp(-(near**2).sum(dim=-1) / k_eff[..., 0].float())  # [B, F]
    higher = (rho[:, None, :] > rho[:, :, None]) & pair  # j denser than i
    dmax = torch.where(pair, dist, torch.zeros_like(dist)).flatten(1).max(dim=1).values  # [B]
    delta = torch.where(higher, dist, inf).min(dim=-1).values
    delta = torch.where(torch.isinf(delta), dmax[:, None].expand_as(delta), delta)
    return torch.where(valid, rho * delta, torch.full_like(rho, -float("inf")))


def fastvid_plan(
    hidden: torch.Tensor,
    grid: Grid,
    params: FastVidParams,
    saliency: torch.Tensor | None = None,
    frame_features: torch.Tensor | None = None,
) -> Reduction:
    """FastVID on ``hidden [T*H*W, C]``; ``saliency [T, H*W]`` and ``frame_features [T, C']``
    default as in the module docstring. Returns the plan (kept rows in raster order)."""
    t, h, w = grid
    f = h * w
    n = t * f
    dev = hidden.device
    frames = hidden.reshape(t, f, -1)
    sal_score = default_saliency(frames) if saliency is None else saliency.float().reshape(t, f)
    glob = frames.float().mean(dim=1) if frame_features is None else frame_features
    sizes = segment_sizes(glob, params.c, params.tau)
    per_frame = int(f * params.ratio)
    sal_n = torch.zeros(t, dtype=torch.long)
    ctx_n = torch.zeros(t, dtype=torch.long)
    seg_of = torch.zeros(t, dtype=torch.long)
    start = 0
    for s, length in enumerate(sizes):
        sal, ctx = frame_counts(length, per_frame, params.d, params.p, f)
        sal_n[start : start + length] = torch.tensor(sal)
        ctx_n[start : start + length] = torch.tensor(ctx)
        seg_of[start : start + length] = s
        start += length
    sal_n, ctx_n = sal_n.to(dev), ctx_n.to(dev)
    salient = _descending_rank(sal_score) < sal_n[:, None]  # [T, F]
    context = torch.zeros_like(salient)
    cframes = torch.nonzero(ctx_n > 0).squeeze(1)
    if cframes.numel():
        score = dpc_scores(frames.index_select(0, cframes), ~salient.index_select(0, cframes))
        context[cframes] = _descending_rank(score) < ctx_n.index_select(0, cframes)[:, None]
    salient, context = salient.reshape(-1), context.reshape(-1)
    keep = salient | context
    merges = []  # (context tokens, their pool, each pool token's choice, counts, weights) per frame
    owner = torch.full((n,), -1, dtype=torch.long, device=dev)  # dropped token -> its context token
    owner_gap = torch.full((n,), n, dtype=torch.long, device=dev)
    unit = F.normalize(hidden.float(), dim=-1)
    frame_of = torch.arange(n, device=dev) // f
    seg_token = seg_of.to(dev).index_select(0, frame_of)
    for fr in cframes.tolist():
        in_seg = seg_token == int(seg_of[fr])
        targets = torch.nonzero(context & (frame_of == fr)).squeeze(1)
        pool = torch.nonzero(in_seg & ~salient & ~(context & (frame_of == fr))).squeeze(1)
        if pool.numel() == 0:
            continue
        choice = (unit.index_select(0, pool) @ unit.index_select(0, targets).T).argmax(dim=1)
        got = torch.bincount(choice, minlength=targets.numel()).float()
        weight = (1 / (got + 1)).clamp(min=params.beta)[:, None]
        merges.append((targets, pool, choice, got, weight))
        dropped = ~keep.index_select(0, pool)
        pool_d, choice_d = pool[dropped], choice[dropped]
        gap = (frame_of.index_select(0, pool_d) - fr).abs()
        closer = gap < owner_gap.index_select(0, pool_d)  # frames ascend: ties keep the earlier
        owner[pool_d[closer]] = targets.index_select(0, choice_d[closer])
        owner_gap[pool_d[closer]] = gap[closer]
    parent = torch.where(owner >= 0, owner, previous_kept_parent(keep))
    idx = torch.arange(n, device=dev)
    parent = torch.where(keep, idx, parent)
    rep = torch.nonzero(keep).squeeze(1)
    token_map = torch.searchsorted(rep, parent)

    def carry(values: torch.Tensor) -> torch.Tensor:  # the context tokens' mixing, on any [N, C'] tensor
        out, dev_v = values.clone(), values.device
        for targets, pool, choice, got, weight in merges:
            sums = torch.zeros(targets.numel(), values.shape[1], device=dev_v).index_add_(
                0, choice.to(dev_v), values.float().index_select(0, pool.to(dev_v))
            )
            agg = sums / got.to(dev_v).clamp(min=1)[:, None]
            w = weight.to(dev_v)
            mixed = w * values.float().index_select(0, targets.to(dev_v)) + (1 - w) * agg
            out[targets.to(dev_v)] = mixed.to(values.dtype)
        return out.index_select(0, rep.to(values.device))

    return Reduction(
        features=carry(hidden),
        num_patches=torch.bincount(token_map, minlength=rep.numel()),
        tlbr=unit_rects(rep, grid),
        token_map=token_map,
        rep_index=rep,
        grid=tuple(grid),
        carry=carry,
    )


class FastVidReducer:
    """FastVID with ``FastVidParams``: ``(hidden, grid, vision_scores=None)``; the vision scores
    ``[T, H*W]`` are the saliency, None: the stand-in (``default_saliency``)."""

    needs_attention = False

    def __init__(self, params: FastVidParams) -> None:
        if not 0 < params.ratio <= 1:
            raise ValueError(f"FastVID ratio must be in (0, 1], got {params.ratio}")
        self.params = params

    def __call__(
        self, hidden: torch.Tensor, grid: Grid, vision_scores: torch.Tensor | None = None
    ) -> Reduction:
        saliency = None if vision_scores is None else vision_scores.to(hidden.device)
        return fastvid_plan(hidden, grid, self.params, saliency=saliency)

    def __repr__(self) -> str:
        return f"FastVidReducer({self.params})"
