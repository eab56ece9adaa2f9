"""FlashVID (Fan et al., ICLR 2026, arXiv 2602.08024; Fanziyang-v/FlashVID): attention- and
diversity-based token selection (ADTS) plus tree-based spatio-temporal merging (TSTM) before the
LLM, then a FastV-style prune inside it.

**Outer stage** on the video's tokens ``x [T, P, C]`` (``P = H*W``), for average retention ``R``:

1. *Segments* (DySeg): frame means ``m_t``; a cut after frame ``t`` where ``cos(m_t, m_{t+1}) <
   segment_threshold``; with fewer than ``min_segments`` segments, the lowest-similarity other
   transitions are cut too (``complementary``).
2. Per frame ``B = ceil(P * R * expansion)`` tokens: ``S = ceil(B * alpha)`` selected by ADTS,
   ``B - S`` per frame left to TSTM.
3. *ADTS* per frame: a max-min diversity greedy on the cosine distance ``1 - cos(x_i, x_j)``, the
   column ``j`` scaled by a calibration ``c_j``: ``div`` none, ``attn_div`` the vision tower's
   attention ``a_j`` (x 1e6), ``attn_div_v2`` ``a_j`` times the event relevance ``x_j . mean_t m_t``;
   ``attn``: the top-``S`` ``a_j`` instead. The first token maximises its column's second smallest
   entry; each next one the minimum over the chosen rows (chosen ones excluded, except in
   ``attn_div_v2``, where the authors do not exclude them).
4. *TSTM* per segment of ``L > 1`` frames: each unselected token of frame ``t > 0`` links to its most
   similar unselected token of frame ``t - 1``; links with cosine ``> temporal_threshold`` merge
   (when fewer than ``(S + B - S) * L`` tokens would stay, the threshold drops to the similarity that
   leaves that many). The merges form trees rooted at unmerged tokens; going from the last frame
   back, a token's value is its own feature plus its merged children's values, and a root's token
   is that sum over ``1 + number of direct children`` (the authors' count, not the tree's size).
5. *Spatial DPC-kNN* per frame: the roots of a frame (``n_f``, the segment's total ``n``) become
   ``ceil(n_f * (B - S) * L / n)`` DPC-kNN clusters (``merging/dpc_knn.py``, ``k = min(7, m)``),
   each the plain mean of its members' values, represented by its centre; none when that ratio is
   >= 1. Kept: the ADTS tokens and the clusters, in raster order.

**Inner stage** at layer 20 of 28 (input; the last prompt token's attention of layer 19, mean over
heads): keeps the ``ceil(n * llm_retention)`` most attended video tokens, drops the others.
Survivors keep their positions. Over the layers this averages ``R``: 20/28 x 1.25 R + 8/28 x 0.375 R.

Authors' settings (their evaluation scripts): ``R`` 0.10-0.25, ``expansion`` 1.25, ``alpha`` 0.7,
``temporal_threshold`` 0.8, ``segment_threshold`` 0.9, ``min_segments`` 8 (LLaVA) / 4 (Qwen2.5-VL),
``selection`` ``attn_div_v2`` (LLaVA) / ``attn_div`` (Qwen2.5-VL), prune layer 20, ``llm_retention``
0.3. The attention variants read the vision tower's attention on the LLM's grid (``scores [T, P]``).

Differences from the authors' code, by design: a segment of one frame clusters only its
unselected tokens (theirs clusters all of the frame's tokens, so an ADTS token can also be a
cluster centre or member: twice in the sequence); repeated cuts are cut once (theirs makes an
empty segment and fails); an ``attn_div_v2`` pick of an already chosen token is kept once; DPC-kNN
densities carry no noise; ``B`` is at most ``P``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lmms_sttm.merging.dpc_knn import dpc_knn, top_index
from lmms_sttm.merging.explicit import from_explicit
from lmms_sttm.merging.groups import Grid
from lmms_sttm.merging.reduction import Reduction

SELECTIONS = ("div", "attn", "attn_div", "attn_div_v2")
ATTENTION_SELECTIONS = ("attn", "attn_div", "attn_div_v2")
ATTN_SCALE = 1e6
KNN = 7


@dataclass(frozen=True)
class OuterSettings:
    """The outer stage's parameters (the authors' ``FlashVidConfig`` names)."""

    retention: float
    expansion: float = 1.25
    alpha: float = 0.7
    temporal_threshold: float = 0.8
    segment_threshold: float = 0.9
    min_segments: int = 8
    complementary: bool = True
    selection: str = "div"
    do_segment: bool = True

    def counts(self, p: int) -> tuple[int, int]:
        """``(S, B - S)`` per frame of ``p`` tokens."""
        budget = min(p, math.ceil(p * self.retention * self.expansion))
        selected = min(budget, math.ceil(budget * self.alpha))
        return selected, budget - selected


# ------------------------------------------------------------------ segments
def unit(x: torch.Tensor) -> torch.Tensor:
    """Rows over their L2 norm (no epsilon, as the authors)."""
    return x / x.norm(p=2, dim=-1, keepdim=True)


def segment_lengths(means: torch.Tensor, threshold: float, minimum: int, complementary: bool) -> list[int]:
    """``means [T, C]`` frame means -> lengths of the consecutive segments (sum ``T``)."""
    t = means.shape[0]
    u = unit(means)
    sims = (u[:-1] * u[1:]).sum(-1)
    cut = sims < threshold
    need = minimum - (int(cut.sum()) + 1)
    if need > 0 and complementary and t > 1:
        filled = torch.where(cut, torch.ones_like(sims), sims)
        extra = torch.argsort(filled, stable=True)[: min(need, t - 1)]
        cut[extra] = True
    ends = torch.nonzero(cut).squeeze(1).tolist() + [t - 1]
    out, prev = [], -1
    for e in ends:
        out.append(e - prev)
        prev = e
    return out


# ------------------------------------------------------------------ ADTS
def _calibration(x: torch.Tensor, scores: torch.Tensor | None, selection: str) -> torch.Tensor | None:
    """``[L, P]`` column scale of the distance matrix, or None (``div``)."""
    if selection == "div":
        return None
    a = scores.float() * ATTN_SCALE
    if selection == "attn_div":
        return a
    pooled = x.float().mean(dim=1)  # [L, C] frame means of the segment
    relevance = torch.einsum("bnd,cd->bcn", x.float(), pooled).mean(dim=1)
    return a * relevance


def adts(x: torch.Tensor, scores: torch.Tensor | None, count: int, selection: str) -> torch.Tensor:
    """``x [L, P, C]``, ``scores [L, P]`` -> ``[L, count]`` chosen token indices per frame, ascending
    (an ``attn_div_v2`` repeat appears once, so a row may hold fewer: padded with -1)."""
    frames, p, _ = x.shape
    if count == 0:
        return torch.empty(frames, 0, dtype=torch.long, device=x.device)
    if selection in ATTENTION_SELECTIONS and scores is None:
        raise ValueError(
            f"FlashVID selection={selection} needs the vision tower's attention (vision_scores), which this "
            "run does not provide; use selection=div"
        )
    if selection == "attn":
        top = torch.stack([top_index(scores[f].float(), count) for f in range(frames)])
        return torch.sort(top, dim=1).values
    u = unit(x.float())
    dist = 1.0 - torch.bmm(u, u.transpose(1, 2))  # [L, i, j]
    calib = _calibration(x, scores, selection)
    if calib is not None:
        dist = dist * calib[:, None, :]
    rows = torch.arange(frames, device=x.device)
    chosen = torch.empty(frames, count, dtype=torch.long, device=x.device)
    chosen[:, 0] = torch.kthvalue(dist, 2, dim=1).values.argmax(dim=1)
    nearest = dist[rows, chosen[:, 0]]  # [L, P]: min over the chosen rows
    exclude = selection != "attn_div_v2"
    for i in range(1, count):
        view = nearest.clone()
        if exclude:
            view.scatter_(1, chosen[:, :i], -1.0)
        chosen[:, i] = view.argmax(dim=1)
        nearest = torch.minimum(nearest, dist[rows, chosen[:, i]])
    chosen = torch.sort(chosen, dim=1).values
    if not exclude:  # a repeated pick stays once
        repeat = torch.zeros_like(chosen, dtype=torch.bool)
        repeat[:, 1:] = chosen[:, 1:] == chosen[:, :-1]
        chosen = torch.where(repeat, torch.full_like(chosen, -1), chosen)
    return chosen


# ------------------------------------------------------------------ TSTM
def tstm(x: torch.Tensor, free: torch.Tensor, threshold: float, lower: int):
    """Temporal trees of a segment: ``x [L, P, C]``, ``free [L, P]`` (not ADTS-chosen).

    Returns ``(merge [L, P] bool: merged into the previous frame, parent [L, P] its token there,
    root [L, P] frame-major index of each token's tree root, stays [L, P] bool: roots that are free)``.
    """
    frames, p, _ = x.shape
    u = unit(x)
    cos = torch.einsum("bnd,bmd->bnm", u[1:], u[:-1]).float()  # [L-1, current, previous]
    cos = cos.masked_fill(~free[1:, :, None], -1.0).masked_fill(~free[:-1, None, :], -1.0)
    best, parent = cos.max(dim=-1)
    sims = torch.cat([torch.full((1, p), -1.0, device=x.device), best])
    parent = torch.cat([torch.full((1, p), -1, dtype=torch.long, device=x.device), parent])
    merge = sims > threshold
    if int((~merge).sum()) < lower:
        soft = torch.sort(sims.flatten(), descending=True).values[frames * p - lower - 1]
        merge = sims > max(float(soft), -1.0 + 1e-6)
    index = torch.arange(frames * p, device=x.device).reshape(frames, p)
    root = index.clone()
    for f in range(1, frames):
        root[f] = torch.where(merge[f], root[f - 1].gather(0, parent[f].clamp_min(0)), index[f])
    return merge, parent, root, ~merge & free


def tree_values(y: torch.Tensor, merge: torch.Tensor, parent: torch.Tensor) -> torch.Tensor:
    """``y [L, P, C']`` -> ``[L, P, C']`` float32: going from the last frame back, a token's value is
    its own plus its merged children's values; a token that stays is divided by ``1 + its direct
    children`` (the authors' count)."""
    frames, p, _ = y.shape
    values = y.float().clone()
    counts = torch.ones(frames, p, device=y.device)
    for f in range(frames - 1, -1, -1):
        stay = ~merge[f]
        values[f, stay] /= counts[f, stay][:, None]
        counts[f, stay] = 1
        if bool(merge[f].any()):
            to = parent[f, merge[f]]
            values[f - 1].index_add_(0, to, values[f, merge[f]])
            counts[f - 1] += torch.bincount(to, minlength=p).float()
            counts[f, merge[f]] = 0
    return values


# ------------------------------------------------------------------ the outer stage
def _clusters(values: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """DPC-kNN of ``values [n, C]`` into ``m`` clusters: ``(centres [m], assign [n])``."""
    centres, dist = dpc_knn(values, m, min(m, KNN))
    assign = dist.index_select(1, centres).argmin(dim=1)
    assign[centres] = torch.arange(m, device=values.device)
    return centres, assign


def _means(values: torch.Tensor, assign: torch.Tensor, m: int) -> torch.Tensor:
    """``values [n, C]``, ``assign [n]`` -> ``[m, C]`` float32 each cluster's plain mean."""
    sums = torch.zeros(m, values.shape[1], dtype=torch.float32, device=values.device)
    sums.index_add_(0, assign, values.float())
    return sums / torch.bincount(assign, minlength=m).float()[:, None]


def _segment(x, scores, base: int, s: OuterSettings, sel: int, other: int, out: list):
    """One segment ``x [L, P, C]`` whose first token is original ``base``; appends ``(reps [m],
    members [k], rows [k] in 0..m-1)`` to ``out`` and returns ``make(y [L, P, C']) -> [sum m, C']``,
    the appended groups' features (in that order) from the segment's tokens ``y``."""
    frames, p, _ = x.shape
    dev = x.device
    index = base + torch.arange(frames * p, device=dev).reshape(frames, p)
    free = torch.ones(frames, p, dtype=torch.bool, device=dev)
    picked: list = []  # (frame, token indices): ADTS tokens, kept as they are
    clusters: list = []  # (roots [n_f], assign [n_f] or None, m): means of tree values
    trees = None

    def make(y: torch.Tensor) -> torch.Tensor:
        parts = [y[f, picks] for f, picks in picked]
        if clusters:
            values = (y.float() if trees is None else tree_values(y, *trees)).reshape(frames * p, -1)
            for roots, assign, m in clusters:
                v = values[roots]
                parts.append((v if assign is None else _means(v, assign, m)).to(y.dtype))
        return torch.cat(parts) if parts else y.new_zeros(0, y.shape[-1])

    if s.alpha > 0 and sel > 0:
        chosen = adts(x, scores, sel, s.selection)
        for f in range(frames):
            picks = chosen[f][chosen[f] >= 0]
            free[f, picks] = False
            picked.append((f, picks))
            out.append((index[f, picks], index[f, picks], torch.arange(picks.numel(), device=dev)))
    n_other = other * frames
    if n_other == 0:
        return make  # the authors drop the unselected tokens
    if frames > 1:
        merge, parent, root, stays = tstm(x, free, s.temporal_threshold, (sel + other) * frames)
        trees = (merge, parent)
        values = tree_values(x, merge, parent)
    else:
        values, root, stays = x.float(), index - base, free
    total = int(stays.sum())
    if total == 0:
        return make
    ratio = n_other / total
    flat_values = values.reshape(frames * p, -1)
    flat_root = root.reshape(-1)
    members = torch.nonzero(free.reshape(-1)).squeeze(1)
    for f in range(frames):
        roots = torch.nonzero(stays[f]).squeeze(1) + f * p  # frame-major indices in the segment
        n_f = roots.numel()
        m = math.ceil(n_f * ratio)
        if n_f == 0 or m == 0:
            continue
        if ratio < 1:
            centres, assign = _clusters(flat_values[roots], m)
            reps, row_of_root = roots[centres], assign
            clusters.append((roots, assign, m))
        else:
            reps, row_of_root = roots, torch.arange(n_f, device=dev)
            clusters.append((roots, None, n_f))
        lookup = torch.full((frames * p,), -1, dtype=torch.long, device=dev)
        lookup[roots] = row_of_root
        mine = members[lookup[flat_root[members]] >= 0]
        out.append((base + reps, base + mine, lookup[flat_root[mine]]))
    return make


def flashvid_outer(
    hidden: torch.Tensor, grid: Grid, s: OuterSettings, vision_scores: torch.Tensor | None = None
) -> Reduction:
    """The outer stage on ``hidden [T*H*W, C]`` (raster order); ``vision_scores [T, H*W]`` or None."""
    t, h, w = grid
    p = h * w
    x = hidden.reshape(t, p, -1)
    sel, other = s.counts(p)
    if s.do_segment:
        lengths = segment_lengths(x.float().mean(dim=1), s.segment_threshold, s.min_segments, s.complementary)
    else:
        lengths = [t]
    out: list = []
    makers: list = []  # (first frame, frames, make)
    start = 0
    for length in lengths:
        sc = None if vision_scores is None else vision_scores[start : start + length].to(hidden.device)
        makers.append((start, length, _segment(x[start : start + length], sc, start * p, s, sel, other, out)))
        start += length
    if not out:
        raise ValueError("FlashVID kept no token: raise its retention")
    n = t * p
    labels = torch.full((n,), -1, dtype=torch.long, device=hidden.device)
    reps, offset = [], 0
    for rep, members, rows in out:
        labels[members] = rows + offset
        reps.append(rep)
        offset += rep.numel()

    def make(v: torch.Tensor) -> torch.Tensor:  # [n, C'] -> [kept, C']
        y = v.reshape(t, p, -1)
        return torch.cat([seg(y[a : a + length]) for a, length, seg in makers])

    return from_explicit(hidden, torch.cat(reps), labels, make, grid)


# ------------------------------------------------------------------ inner stage
def inner_count(n: int, ratio: float) -> int:
    """Tokens the inner prune keeps of ``n``: ``ceil(n * ratio)`` in ``[1, n]``."""
    return max(1, min(n, math.ceil(n * ratio)))


def flashvid_inner(
    hidden: torch.Tensor, scores: torch.Tensor, count: int, grid: Grid | None = None
) -> Reduction:
    """``hidden [n, C]``, ``scores [n]`` -> plan keeping the ``count`` most attended tokens (others dropped)."""
    n = hidden.shape[0]
    top = torch.sort(top_index(scores.to(hidden.device).float(), count)).values
    labels = torch.full((n,), -1, dtype=torch.long, device=hidden.device)
    labels[top] = torch.arange(count, device=hidden.device)
    return from_explicit(hidden, top, labels, lambda v: v[top], (1, 1, n) if grid is None else tuple(grid))
