"""Loop-based references of HoliTom and FlashVID, written from the papers' descriptions (and the
authors' published settings), token by token, for the vectorised ``lmms_sttm.merging`` versions.

Each returns ``{rep: (members, feature)}``: every kept token by its representative (original
index), the original tokens it covers (dropped tokens belong to none) and its feature (float64).
"""

from __future__ import annotations

import math

import torch


def cos(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float(a @ b / (a.norm() * b.norm()))


def density_peaks(x: list[torch.Tensor], m: int, k: int) -> tuple[list[int], list[list[float]]]:
    """DPC-kNN by the definitions: centres (descending score, ties lower index) and distances; of
    two equal densities the lower index counts as denser."""
    n, c = len(x), x[0].numel()
    d = [[float((x[i].double() - x[j].double()).norm()) / math.sqrt(c) for j in range(n)] for i in range(n)]
    rho = [math.exp(-sum(v * v for v in sorted(d[i])[:k]) / k) for i in range(n)]
    far = max(max(row) for row in d)
    score = []
    for i in range(n):
        higher = [d[i][j] for j in range(n) if rho[j] > rho[i] or (rho[j] == rho[i] and j < i)]
        score.append((min(higher) if higher else far) * rho[i])
    order = sorted(range(n), key=lambda i: (-score[i], i))
    return order[:m], d


def nearest(i: int, centres: list[int], d) -> int:
    """Row in ``centres`` of the nearest centre (ties: first in ``centres``)."""
    best = 0
    for row, c in enumerate(centres):
        if d[i][c] < d[i][centres[best]]:
            best = row
    return best


# ------------------------------------------------------------------ HoliTom
def holitom_outer_ref(x: torch.Tensor, retain, tau, beta, contextual, knn=7, scores=None) -> dict:
    """``x [T, P, C]``."""
    t, p, _ = x.shape
    n = t * p
    static = [[cos(x[f, q], x[f + 1, q]) > tau for q in range(p)] for f in range(t - 1)]

    def count(a: int, b: int) -> float:
        kept = sum(1 for q in range(p) if all(static[f][q] for f in range(a, b)))
        return float((b - a) * kept)

    best, start = [], []
    for i in range(t):
        value, first = (best[i - 1] if i else 0.0), i
        for w in range(2, i + 2):
            j = i - w
            cand = (best[j] if j >= 0 else 0.0) + count(j + 1, i)
            if cand > value:
                value, first = cand, j + 1
        best.append(value)
        start.append(first)
    windows, i = [], t - 1
    while i >= 0:
        windows.append((start[i], i))
        i = start[i] - 1
    windows.reverse()
    r = min(retain / ((n - best[-1]) / n), 1)
    out = {}

    def clusters(feats, members_of: list, m: int, rep_of: list) -> None:
        centres, d = density_peaks(feats, m, min(knn, m))
        centres = sorted(centres)
        groups = {c: [] for c in centres}
        for i in range(len(feats)):
            if i not in groups:
                groups[centres[nearest(i, centres, d)]].append(i)
        for c, others in groups.items():
            feat = feats[c].double()
            if others:
                feat = beta * feat + (1 - beta) * torch.stack([feats[o].double() for o in others]).mean(0)
            covered = set(members_of[c])
            for o in others:
                covered |= set(members_of[o])
            out[rep_of[c]] = (covered, feat)

    for a, b in windows:
        still = [q for q in range(p) if b > a and all(static[f][q] for f in range(a, b))]
        moving = [q for q in range(p) if q not in still]
        if still:
            m = round(len(still) * r)
            if m:
                feats = [torch.stack([x[f, q].double() for f in range(a, b + 1)]).mean(0) for q in still]
                members = [[f * p + q for f in range(a, b + 1)] for q in still]
                clusters(feats, members, m, [a * p + q for q in still])
        if not moving:
            continue
        keep = math.ceil(len(moving) * r)
        dominant = round(keep * (1 - contextual))
        for f in range(a, b + 1):
            ranked = sorted(moving, key=lambda q: (-float(scores[f, q]), q)) if dominant else []
            for q in ranked[:dominant]:
                out[f * p + q] = ({f * p + q}, x[f, q].double())
            rest = [q for q in moving if q not in ranked[:dominant]]
            if keep - dominant:
                feats = [x[f, q] for q in rest]
                clusters(feats, [[f * p + q] for q in rest], keep - dominant, [f * p + q for q in rest])
    return out


def holitom_inner_ref(h: torch.Tensor, scores: torch.Tensor, count: int) -> dict:
    """The authors' loop: each unkept token, in sequence order, averaged into its most similar kept one."""
    n = h.shape[0]
    top = sorted(range(n), key=lambda i: (-float(scores[i]), i))[:count]
    state = {t: h[t].double() for t in top}
    members = {t: {t} for t in top}
    for i in range(n):
        if i in state:
            continue
        target = max(top, key=lambda t: (cos(h[i], h[t]), -top.index(t)))
        state[target] = (state[target] + h[i].double()) / 2
        members[target].add(i)
    return {t: (members[t], state[t]) for t in top}


# ------------------------------------------------------------------ FlashVID
def flashvid_outer_ref(x: torch.Tensor, s, scores=None) -> dict:
    """``x [T, P, C]``, ``s``: ``merging.flashvid.OuterSettings``."""
    t, p, _ = x.shape
    means = [x[f].double().mean(0) for f in range(t)]
    sims = [cos(means[f], means[f + 1]) for f in range(t - 1)]
    cuts = {f for f in range(t - 1) if sims[f] < s.segment_threshold}
    if s.do_segment and len(cuts) + 1 < s.min_segments:
        filled = [1.0 if f in cuts else sims[f] for f in range(t - 1)]
        cuts |= set(sorted(range(t - 1), key=lambda f: (filled[f], f))[: s.min_segments - len(cuts) - 1])
    if not s.do_segment:
        cuts = set()
    budget = min(p, math.ceil(p * s.retention * s.expansion))
    sel = min(budget, math.ceil(budget * s.alpha))
    other = budget - sel
    out = {}
    bounds = sorted(cuts) + [t - 1]
    first = 0
    for last in bounds:
        frames = list(range(first, last + 1))
        chosen = {f: _adts_ref(x, f, frames, sel, s.selection, scores) for f in frames}
        for f in frames:
            for q in chosen[f]:
                out[f * p + q] = ({f * p + q}, x[f, q].double())
        if other:
            _tstm_dpc_ref(x, frames, chosen, sel, other, s.temporal_threshold, out)
        first = last + 1
    return out


def _adts_ref(x, f, frames, count, selection, scores) -> list[int]:
    p = x.shape[1]
    if count == 0:
        return []
    if selection == "attn":
        return sorted(sorted(range(p), key=lambda q: (-float(scores[f, q]), q))[:count])
    calib = [1.0] * p
    if selection in ("attn_div", "attn_div_v2"):
        calib = [float(scores[f, q]) * 1e6 for q in range(p)]
    if selection == "attn_div_v2":
        pooled = torch.stack([x[g].double().mean(0) for g in frames]).mean(0)
        calib = [calib[q] * float(x[f, q].double() @ pooled) for q in range(p)]
    dist = [[(1 - cos(x[f, i], x[f, j])) * calib[j] for j in range(p)] for i in range(p)]
    second = [sorted(dist[i][j] for i in range(p))[1] for j in range(p)]
    picks = [max(range(p), key=lambda j: (second[j], -j))]
    while len(picks) < count:
        value = [min(dist[i][j] for i in picks) for j in range(p)]
        if selection != "attn_div_v2":
            for j in picks:
                value[j] = -1.0
        picks.append(max(range(p), key=lambda j: (value[j], -j)))
    return sorted(set(picks))


def _tstm_dpc_ref(x, frames, chosen, sel, other, threshold, out) -> None:
    p = x.shape[1]
    free = {f: [q for q in range(p) if q not in chosen[f]] for f in frames}
    link = {}  # (f, q) -> (similarity, parent q in f - 1)
    for f in frames[1:]:
        for q in free[f]:
            best = max(free[f - 1], key=lambda j: (cos(x[f, q], x[f - 1, j]), -j))
            link[(f, q)] = (cos(x[f, q], x[f - 1, best]), best)
    sims = [link[(f, q)][0] if (f, q) in link else -1.0 for f in frames for q in range(p)]
    merges = {key for key, (v, _) in link.items() if v > threshold}
    lower = (sel + other) * len(frames)
    if len(sims) - len(merges) < lower:
        soft = max(sorted(sims, reverse=True)[len(sims) - lower - 1], -1 + 1e-6)
        merges = {key for key, (v, _) in link.items() if v > soft}
    value = {(f, q): x[f, q].double().clone() for f in frames for q in range(p)}
    count = {(f, q): 1 for f in frames for q in range(p)}
    cover = {(f, q): {f * p + q} for f in frames for q in range(p)}
    for f in reversed(frames):
        for q in range(p):
            if (f, q) in merges:
                parent = (f - 1, link[(f, q)][1])
                value[parent] = value[parent] + value[(f, q)]
                count[parent] += 1
                cover[parent] |= cover[(f, q)]
            else:
                value[(f, q)] = value[(f, q)] / count[(f, q)]
    roots = {f: [q for q in free[f] if (f, q) not in merges] for f in frames}
    total = sum(len(v) for v in roots.values())
    ratio = other * len(frames) / total
    for f in frames:
        items = roots[f]
        m = math.ceil(len(items) * ratio)
        if not items or not m:
            continue
        if ratio >= 1:
            for q in items:
                out[f * p + q] = (cover[(f, q)], value[(f, q)])
            continue
        feats = [value[(f, q)] for q in items]
        centres, d = density_peaks(feats, m, min(m, 7))
        groups = {c: [c] for c in centres}
        for i in range(len(items)):
            if i not in groups:
                groups[centres[nearest(i, centres, d)]].append(i)
        for c, members in groups.items():
            covered = set().union(*(cover[(f, items[i])] for i in members))
            out[f * p + items[c]] = (covered, torch.stack([feats[i] for i in members]).mean(0))
