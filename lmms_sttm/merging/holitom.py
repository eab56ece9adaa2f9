"""HoliTom (Shao et al., NeurIPS 2025, arXiv 2505.21334; cokeshao/HoliTom): outer-LLM temporal and
spatial merging of the video tokens, then an inner-LLM merge at layer k.

**Outer stage** (before the LLM) on the video's tokens ``x [T, P, C]`` (``P = H*W``):

1. *Temporal segmentation.* ``s[t, p] = cos(x[t, p], x[t+1, p])``; a position is static over frames
   ``a..b`` when ``s[t, p] > tau`` for every ``a <= t < b``. ``count[a, b] = (b - a) * (#static
   positions over a..b)`` is what merging the window's static tokens into one saves. A dynamic
   program splits the frames into consecutive windows (at most ``max_window`` frames) maximising
   the total count: ``best[i] = max(best[i-1], max_w best[i-w] + count[i-w+1, i])`` over window
   lengths ``w = 2..`` (a strictly larger value wins: single frames first, then shorter windows).
   ``saved = best[T-1]``; the retention left for the rest is ``r' = min(1, r / ((N - saved) / N))``.
2. *Spatial merging, per window.* Static positions: one token per position, the mean over the
   window's frames; of the ``n_s`` static tokens, ``round(n_s * r')`` DPC-kNN cluster centres
   (``merging/dpc_knn.py``, ``k = min(knn, centres)``) are kept. Dynamic positions, per frame:
   ``m = ceil(n_d * r')`` tokens are kept, ``round(m * (1 - D))`` *dominant* ones (highest vision
   tower attention, the [CLS]-like score of VisionZip) and the rest as DPC-kNN centres of the other
   dynamic tokens of that frame. A cluster's token is ``beta * centre + (1 - beta) * mean(other
   members)`` (just the centre when it has no other member); dominant tokens keep their feature;
   dynamic tokens neither dominant nor clustered are dropped.

**Inner stage** (input of layer k, reading the last prompt token's attention of layer k-1): the
``round(n * (1 - r_in))`` most attended video tokens stay; every other token is merged into the
kept one of highest cosine similarity, one after another in sequence order, each merge replacing
the kept token by the average ``(kept + other) / 2`` (so the last merged weighs 1/2, the one before
1/4, ...). Survivors keep their positions.

The authors' settings (their evaluation scripts): ``r = RETAIN_RATIO`` 0.10 / 0.15 / 0.20 / 0.25,
``tau = T`` 0.65 at 0.10 and 0.80 above, ``beta = BETA`` 0.6, ``D`` 0 (every kept dynamic token
dominant), ``K`` 7, ``HOLITOM_k`` 18 of 28 layers, ``HOLITOM_r`` 0.5.

Differences from the authors' code, by design: the DPC-kNN densities carry no random noise
(``dpc_knn.py``); kept tokens enter the LLM in raster order of their representatives (theirs:
per window, the static tokens first, then each frame's dominant tokens by attention, then its
clusters). A static token's representative is its centre position in the window's first frame.
Dominant selection needs the vision tower's attention (``vision_scores [T, P]``, computed while
the video is encoded: ``models/vision_attention.py``); with ``D = 1`` every kept dynamic token
comes from DPC-kNN and the outer stage reads the hidden states only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lmms_sttm.merging.dpc_knn import dpc_knn, top_index
from lmms_sttm.merging.explicit import from_explicit
from lmms_sttm.merging.groups import Grid
from lmms_sttm.merging.reduction import Reduction


@dataclass(frozen=True)
class OuterSettings:
    """The outer stage's parameters (authors' names in brackets): ``retain`` [RETAIN_RATIO], ``tau``
    [T], ``beta`` [BETA], ``contextual`` [D], ``knn`` [K], ``max_window`` [MAX_WINDOW_SIZE]."""

    retain: float
    tau: float = 0.80
    beta: float = 0.6
    contextual: float = 1.0
    knn: int = 7
    max_window: int = 1024


# ------------------------------------------------------------------ temporal segmentation
def frame_similarity(x: torch.Tensor) -> torch.Tensor:
    """``x [T, P, C]`` -> ``[T-1, P]`` cosine of each token with the same position in the next frame
    (float32; the authors normalise first, then take the cosine: equal up to rounding)."""
    xf = x.float()
    norm = xf.norm(p=2, dim=-1).clamp_min(1e-12)
    return (xf[:-1] * xf[1:]).sum(-1) / (norm[:-1] * norm[1:])


def static_counts(static: torch.Tensor) -> torch.Tensor:
    """``static [T-1, P]`` bool -> ``count [T, T]`` float64: ``count[a, b] = (b - a) * #{p: static[t, p]
    for all a <= t < b}`` (0 for ``b <= a``)."""
    steps, p = static.shape
    t = steps + 1
    run = torch.zeros(t, p, dtype=torch.long)  # run[a, p]: consecutive static steps from a
    flags = static.cpu()
    for a in range(steps - 1, -1, -1):
        run[a] = (run[a + 1] + 1) * flags[a].long()
    length = torch.arange(t)
    # at_least[a, d] = #positions whose run from a is >= d
    at_least = (run[:, None, :] >= length[None, :, None]).sum(-1).double()  # [T, T] over d
    count = torch.zeros(t, t, dtype=torch.float64)
    a_idx, b_idx = torch.triu_indices(t, t, offset=1)
    d = b_idx - a_idx
    count[a_idx, b_idx] = d.double() * at_least[a_idx, d]
    return count


def select_windows(count: torch.Tensor, max_window: int) -> tuple[list[tuple[int, int]], float]:
    """The dynamic program over ``count [T, T]``: ``([(first, last)] windows in order, saved)``."""
    t = count.shape[0]
    c = count.tolist()
    best = [0.0] * t
    start = [0] * t
    for i in range(t):
        value, first = (best[i - 1] if i > 0 else 0.0), i
        for w in range(2, min(i + 1, max_window) + 1):
            j = i - w
            cand = (best[j] if j >= 0 else 0.0) + c[j + 1][i]
            if cand > value:
                value, first = cand, j + 1
        best[i], start[i] = value, first
    windows, i = [], t - 1
    while i >= 0:
        windows.append((start[i], i))
        i = start[i] - 1
    return windows[::-1], best[-1]


def adjusted_retention(retain: float, n: int, saved: float) -> float:
    """``min(1, r / ((N - saved) / N))``: the share the spatial merge keeps of what is left."""
    return min(retain / ((n - saved) / n), 1)


# ------------------------------------------------------------------ spatial merging
def cluster_members(dist: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """``dist [n, n]``, ``centres [m]`` (ascending) -> ``[n]`` cluster (row of ``centres``) of each token:
    its nearest centre (ties: the lower one); a centre is its own cluster."""
    assign = dist.index_select(1, centres).argmin(dim=1)
    assign[centres] = torch.arange(centres.numel(), device=dist.device)
    return assign


def blended(x: torch.Tensor, centres: torch.Tensor, assign: torch.Tensor, beta: float) -> torch.Tensor:
    """``[m, C]``: ``beta * centre + (1 - beta) * mean(other members)``, or the centre alone."""
    m = centres.numel()
    members = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    members[centres] = False
    sums = torch.zeros(m, x.shape[1], dtype=torch.float32, device=x.device)
    sums.index_add_(0, assign[members], x[members].float())
    counts = torch.bincount(assign[members], minlength=m).float()
    centre = x.index_select(0, centres).float()
    mixed = beta * centre + (1 - beta) * sums / counts.clamp_min(1)[:, None]
    return torch.where(counts[:, None] > 0, mixed, centre).to(x.dtype)


def cluster(x: torch.Tensor, m: int, knn: int) -> tuple[torch.Tensor, torch.Tensor]:
    """DPC-kNN of ``x [n, C]`` into ``m >= 1`` tokens: ``(centres [m] ascending, assign [n])``."""
    centres, dist = dpc_knn(x, m, min(knn, m))
    centres = torch.sort(centres).values
    return centres, cluster_members(dist, centres)


class _Groups:
    """Kept tokens as they are made: representative, members (original indices), and how each
    group's features are made from the original tokens (``make(values [n, C']) -> [m, C']``)."""

    def __init__(self) -> None:
        self.reps: list[torch.Tensor] = []
        self.members: list[tuple[torch.Tensor, torch.Tensor]] = []  # (original indices, kept row)
        self.makers: list = []
        self.count = 0

    def add(self, reps: torch.Tensor, member_index: torch.Tensor, member_row: torch.Tensor, make) -> None:
        """``reps [m]``, members ``[k]`` with their row ``[k]`` in ``0..m-1``, ``make``: ``[n, C'] -> [m, C']``."""
        self.reps.append(reps)
        self.members.append((member_index, member_row + self.count))
        self.makers.append(make)
        self.count += reps.numel()

    def make(self, values: torch.Tensor) -> torch.Tensor:
        """``values [n, C']`` -> ``[count, C']`` every group's features, in the order added."""
        return torch.cat([make(values) for make in self.makers])

    def plan(self, hidden: torch.Tensor, grid: Grid) -> Reduction:
        labels = torch.full((hidden.shape[0],), -1, dtype=torch.long, device=hidden.device)
        for index, row in self.members:
            labels[index] = row
        return from_explicit(hidden, torch.cat(self.reps), labels, self.make, grid)


def _dynamic(groups: _Groups, x, scores, index, r: float, s: OuterSettings) -> None:
    """One window's dynamic tokens: ``x [w, d, C]``, ``scores [w, d]`` or None, ``index [w, d]`` originals."""
    w, d, _ = x.shape
    if d == 0:
        return
    keep = math.ceil(d * r)
    dominant = round(keep * (1 - s.contextual))
    contextual = keep - dominant
    if dominant > 0 and scores is None:
        raise ValueError(
            "HoliTom's dominant tokens need the vision tower's attention (vision_scores), which this run "
            "does not provide; use contextual=1 (every kept dynamic token from DPC-kNN)"
        )
    for f in range(w):
        rest = torch.arange(d, device=x.device)
        if dominant > 0:
            top = top_index(scores[f].float(), dominant)
            picked = index[f, top]
            groups.add(picked, picked, torch.arange(dominant, device=x.device), lambda v, i=picked: v[i])
            mask = torch.ones(d, dtype=torch.bool, device=x.device)
            mask[top] = False
            rest = rest[mask]
        if contextual > 0:
            centres, assign = cluster(x[f, rest], contextual, s.knn)
            members = index[f, rest]
            groups.add(
                members[centres],
                members,
                assign,
                lambda v, i=members, c=centres, a=assign: blended(v[i], c, a, s.beta),
            )


def _static(groups: _Groups, x, index, r: float, s: OuterSettings) -> None:
    """One window's static positions: ``x [w, q, C]`` (the window's frames), ``index [w, q]``."""
    q = x.shape[1]
    m = round(q * r)
    if q == 0 or m == 0:
        return

    def mean(v: torch.Tensor) -> torch.Tensor:  # [n, C'] -> [q, C'] each position's mean over the window
        return v[index].float().mean(dim=0).to(v.dtype)

    centres, assign = cluster(x.float().mean(dim=0).to(x.dtype), m, s.knn)
    w = x.shape[0]
    groups.add(
        index[0, centres],
        index.reshape(-1),
        assign.repeat(w),
        lambda v: blended(mean(v), centres, assign, s.beta),
    )


def holitom_outer(
    hidden: torch.Tensor, grid: Grid, s: OuterSettings, vision_scores: torch.Tensor | None = None
) -> Reduction:
    """The outer stage on ``hidden [T*H*W, C]`` (raster order); ``vision_scores [T, H*W]`` or None."""
    t, h, w = grid
    p = h * w
    n = t * p
    x = hidden.reshape(t, p, -1)
    index = torch.arange(n, device=hidden.device).reshape(t, p)
    groups = _Groups()
    if t > 1:
        sim = frame_similarity(x)
        static = sim > s.tau
        windows, saved = select_windows(static_counts(static), s.max_window)
    else:
        static, windows, saved = None, [(0, 0)], 0.0
    r = adjusted_retention(s.retain, n, saved)
    for a, b in windows:
        still = static[a:b].all(dim=0) if b > a else torch.zeros(p, dtype=torch.bool, device=hidden.device)
        moving = ~still
        if b > a:
            _static(groups, x[a : b + 1][:, still], index[a : b + 1][:, still], r, s)
        sc = None if vision_scores is None else vision_scores[a : b + 1][:, moving.to(vision_scores.device)]
        _dynamic(groups, x[a : b + 1][:, moving], sc, index[a : b + 1][:, moving], r, s)
    if groups.count == 0:
        raise ValueError("HoliTom kept no token: raise its retention")
    return groups.plan(hidden, grid)


# ------------------------------------------------------------------ inner stage
def inner_count(n: int, ratio: float) -> int:
    """Tokens the inner merge keeps of ``n``: ``round(n * (1 - ratio))`` in ``[1, n]``."""
    return max(1, min(n, round(n * (1 - ratio))))


def holitom_inner(
    hidden: torch.Tensor, scores: torch.Tensor, count: int, grid: Grid | None = None
) -> Reduction:
    """``hidden [n, C]`` current video tokens, ``scores [n]`` last prompt token's attention -> plan
    keeping the ``count`` most attended tokens, each the sequential average of its merged tokens."""
    n = hidden.shape[0]
    grid = (1, 1, n) if grid is None else tuple(grid)
    top = top_index(scores.to(hidden.device).float(), count)  # by score, as the authors' topk
    is_top = torch.zeros(n, dtype=torch.bool, device=hidden.device)
    is_top[top] = True
    others = torch.nonzero(~is_top).squeeze(1)  # ascending: the authors' merge order
    kept = hidden.index_select(0, top).float()
    labels = torch.empty(n, dtype=torch.long, device=hidden.device)
    labels[top] = torch.arange(count, device=hidden.device)
    if not others.numel():
        return from_explicit(hidden, top, labels, lambda v: v[top], grid)
    rest = hidden.index_select(0, others).float()
    sim = F.normalize(rest, dim=-1) @ F.normalize(kept, dim=-1).T
    target = sim.argmax(dim=1)  # first maximum: the higher-scored kept token
    labels[others] = target
    # the j-th of m tokens merged into one kept token weighs 2^-(m - j + 1); the kept one 2^-m
    total = torch.bincount(target, minlength=count)
    order = torch.argsort(target, stable=True)  # by kept token, then sequence order
    first = torch.cumsum(total, 0) - total
    position = torch.empty_like(order)
    position[order] = torch.arange(order.numel(), device=hidden.device) - first.index_select(
        0, target.index_select(0, order)
    )
    later = total.index_select(0, target) - 1 - position  # tokens merged after it
    weight = torch.pow(0.5, (later + 1).double()).float()
    own = torch.pow(0.5, total.double()).float()

    def make(v: torch.Tensor) -> torch.Tensor:  # [n, C'] -> [count, C'] the sequential averages
        feats = v[top].float() * own.to(v.device)[:, None]
        return feats.index_add(0, target, v[others].float() * weight.to(v.device)[:, None]).to(v.dtype)

    return from_explicit(hidden, top, labels, make, grid)
