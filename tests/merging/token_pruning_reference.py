"""Loop-based references of EVS, VidCom2 and FastVID (written from the papers' rules as the module
docstrings of ``merging/evs.py``, ``merging/vidcom2.py`` and ``merging/fastvid.py`` state them),
token by token in float64 Python arithmetic, for small inputs. They return plain lists so the
vectorised code is compared with something built differently.
"""

from __future__ import annotations

import math

import torch


def _rows(x: torch.Tensor) -> list[list[float]]:
    return [[float(v) for v in row] for row in x.double()]


def _dot(a, b) -> float:
    return sum(p * q for p, q in zip(a, b, strict=True))


def _norm(a) -> float:
    return math.sqrt(_dot(a, a))


def _cos(a, b) -> float:
    return _dot(a, b) / max(_norm(a) * _norm(b), 1e-8)


def evs_ref(x: torch.Tensor, grid, rate: float) -> list[int]:
    """Kept original indices (sorted) of EVS at pruning rate ``rate``."""
    t, h, w = grid
    f = h * w
    rows = _rows(x)
    score = [255.0 if i < f else 1 - _cos(rows[i], rows[i - f]) for i in range(t * f)]
    count = max(f, int(t * f * (1 - rate)))
    order = sorted(range(t * f), key=lambda i: (-score[i], i))
    return sorted(order[:count])


def vidcom2_ref(x: torch.Tensor, grid, retention: float) -> list[int]:
    """Kept original indices (sorted) of VidCom2 at base retention ``retention``."""
    t, h, w = grid
    f = h * w
    rows = _rows(x)
    n, c = len(rows), len(rows[0])
    means = [sum(r[j] for r in rows) / n for j in range(c)]
    var = [sum((r[j] - means[j]) ** 2 for r in rows) / n for j in range(c)]
    chans = sorted(range(c), key=lambda j: (var[j], j))[: c // 2]
    unit = []
    for r in rows:
        v = [r[j] for j in chans]
        nv = max(_norm(v), 1e-12)
        unit.append([a / nv for a in v])
    k = len(chans)
    vc = [sum(u[j] for u in unit) / n for j in range(k)]

    def g(u, centre):
        d2 = sum((a - b) ** 2 for a, b in zip(u, centre, strict=True))
        return sum(math.exp(-d2 / (2 * a)) for a in (0.125, 0.25, 0.5, 1.0, 2.0))

    kept = []
    vscore, fscore = [], []
    for fr in range(t):
        frame = unit[fr * f : (fr + 1) * f]
        fc = [sum(u[j] for u in frame) / f for j in range(k)]
        vscore.append([g(u, vc) for u in frame])
        fscore.append([g(u, fc) for u in frame])
    s = [-sum(v) / f for v in vscore]
    top = max(s)
    e = [math.exp((v - top) / 0.01) for v in s]
    probs = [v / sum(e) for v in e]
    pm = sum(probs) / t
    for fr in range(t):
        scale = min(1.0, retention * (1 + probs[fr] - pm))
        budget = max(1, round(scale * f))  # Python's round: half to even, like torch.round
        total = [vscore[fr][i] + fscore[fr][i] for i in range(f)]
        chosen = sorted(range(f), key=lambda i: (total[i], i))[:budget]
        kept += [fr * f + i for i in chosen]
    return sorted(kept)


def fastvid_ref(x: torch.Tensor, grid, ratio: float, c=8, tau=0.9, d=0.4, p=4, beta=0.6, saliency=None):
    """FastVID: ``(kept original indices sorted, {index: feature list})`` with frame features (frame
    means) and ``saliency`` (``[T, H*W]``, the vision tower's scores) or, None, the stand-in (dot
    product with the frame mean)."""
    t, h, w = grid
    f = h * w
    rows = _rows(x)
    dim = len(rows[0])
    frames = [rows[fr * f : (fr + 1) * f] for fr in range(t)]
    mean = [[sum(r[j] for r in fr) / f for j in range(dim)] for fr in frames]
    # DySeg
    sims = [_cos(mean[i], mean[i + 1]) for i in range(t - 1)]
    cuts = set(sorted(range(t - 1), key=lambda i: (sims[i], i))[: max(0, min(c - 1, t - 1))])
    cuts |= {i for i in range(t - 1) if sims[i] < tau}
    segments, start = [], 0
    for i in range(t):
        if i in cuts or i == t - 1:
            segments.append(list(range(start, i + 1)))
            start = i + 1
    per_frame = int(f * ratio)
    salient, context = {}, {}
    feats = {}
    for seg in segments:
        length = len(seg)
        total = per_frame * length
        ctx_total = int(total * d)
        sal_total = total - ctx_total
        if length == 1:
            sal_n, ctx_n = [sal_total], [ctx_total]
        else:
            sal_n = [sal_total // length + (1 if i < sal_total % length else 0) for i in range(length)]
            chunks = -(-length // p)
            chunk = [ctx_total // chunks + (1 if j < ctx_total % chunks else 0) for j in range(chunks)]
            forward = []
            for j in range(length):  # counted from the segment's end
                forward.append(chunk[j // p] if j % p == 0 else 0)
            ctx_n = list(reversed(forward))
        for i, fr in enumerate(seg):
            s = min(sal_n[i], f)
            k = min(ctx_n[i], f - s)
            if saliency is None:
                score = [_dot(frames[fr][j], mean[fr]) for j in range(f)]
            else:
                score = [float(saliency[fr][j]) for j in range(f)]
            sal = sorted(range(f), key=lambda j: (-score[j], j))[:s]
            salient[fr] = sal
            rest = [j for j in range(f) if j not in sal]
            ctx = []
            if k > 0:
                pts = [frames[fr][j] for j in rest]
                m = len(pts)
                dist = [[_norm([a - b for a, b in zip(pts[i1], pts[i2], strict=True)]) / math.sqrt(dim) for i2 in range(m)]
                        for i1 in range(m)]  # fmt: skip
                kk = min(4, m)
                rho = [math.exp(-sum(v * v for v in sorted(dist[i1])[:kk]) / kk) for i1 in range(m)]
                dmax = max(max(r) for r in dist)
                delta = []
                for i1 in range(m):
                    higher = [dist[i1][i2] for i2 in range(m) if rho[i2] > rho[i1]]
                    delta.append(min(higher) if higher else dmax)
                sc = [rho[i1] * delta[i1] for i1 in range(m)]
                ctx = [rest[i1] for i1 in sorted(range(m), key=lambda i1: (-sc[i1], i1))[:k]]
            context[fr] = ctx
        seg_sal = {(fr, j) for fr in seg for j in salient[fr]}
        for fr in seg:
            for j in salient[fr]:
                feats[fr * f + j] = rows[fr * f + j]
        for fr in seg:
            targets = context[fr]
            if not targets:
                continue
            own = {(fr, j) for j in targets}
            pool = [(g2, j) for g2 in seg for j in range(f) if (g2, j) not in seg_sal and (g2, j) not in own]
            got = {j: [] for j in targets}
            for g2, j in pool:
                v = frames[g2][j]
                best = max(range(len(targets)), key=lambda q: (_cos(v, frames[fr][targets[q]]), -q))
                got[targets[best]].append(v)
            for j in targets:
                base = frames[fr][j]
                if got[j]:
                    wgt = max(1 / (len(got[j]) + 1), beta)
                    agg = [sum(v[q] for v in got[j]) / len(got[j]) for q in range(dim)]
                    feats[fr * f + j] = [wgt * a + (1 - wgt) * b for a, b in zip(base, agg, strict=True)]
                else:
                    feats[fr * f + j] = base
    return sorted(feats), feats
