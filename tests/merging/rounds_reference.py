"""Loop reference of bipartite soft matching with explicit group sizes, for small inputs.

Written token by token from the rules in ``merging/tome.py``'s docstring, in float64 Python
lists, so that the vectorised rounds (``authors_rounds``, ``bipartite_assign``) and the trimmer
(``budget.trim_to``) are compared with something built differently. ``weighted=False`` gives the
plain mean of the merged rows (the wrong rule), so a test can show that its case tells them apart.
"""

from __future__ import annotations

import torch


def _cos(u: torch.Tensor, v: torch.Tensor) -> float:
    return float(u @ v / (u.norm() * v.norm()))


def rounds(
    x: torch.Tensor,
    sizes: list[int],
    target: int,
    order: str,
    weighted: bool = True,
) -> tuple[list[list[int]], list[torch.Tensor]]:
    """Rounds down to ``target`` rows of ``x [M, C]`` whose rows cover ``sizes`` originals each.

    ``order="authors"``: ``r = min(M - target, M // 2)`` per round, output = unmerged A rows by
    decreasing similarity then B rows; ``"raster"``: ``r = min(#A, M - target)``, survivors keep
    their order. Returns (input rows of each output row, in output order; output features as the
    size-weighted mean of the merged rows, float64).
    """
    rows = [[i] for i in range(x.shape[0])]
    feats = [x[i].double().clone() for i in range(x.shape[0])]
    size = [float(s) for s in sizes]
    while len(rows) > target:
        m = len(rows)
        a_pos, b_pos = list(range(0, m, 2)), list(range(1, m, 2))
        if not b_pos:
            break
        r = min(m - target, m // 2) if order == "authors" else min(len(a_pos), m - target)
        best = []
        for a in a_pos:
            sims = [_cos(feats[a], feats[b]) for b in b_pos]
            j = max(range(len(b_pos)), key=lambda k: (sims[k], -k))  # highest, then lowest B index
            best.append((sims[j], j))
        ranked = sorted(range(len(a_pos)), key=lambda k: (-best[k][0], k))
        src = set(ranked[:r])
        into: dict[int, list[int]] = {}  # B position -> merged A positions
        for k in src:
            into.setdefault(b_pos[best[k][1]], []).append(a_pos[k])

        merged = {}  # B position -> (covered input rows, mean, size) after the merge
        for b in b_pos:
            parts = [b, *into.get(b, [])]
            w = [size[p] if weighted else 1.0 for p in parts]
            mean = sum(feats[p] * wp for p, wp in zip(parts, w, strict=True)) / sum(w)
            merged[b] = (sorted(i for p in parts for i in rows[p]), mean, sum(size[p] for p in parts))
        if order == "authors":
            out = [(rows[a_pos[k]], feats[a_pos[k]], size[a_pos[k]]) for k in ranked[r:]]
            out += [merged[b] for b in b_pos]
        else:
            gone = {a_pos[k] for k in src}
            out = [merged[p] if p % 2 else (rows[p], feats[p], size[p]) for p in range(m) if p not in gone]
        rows, feats, size = [o[0] for o in out], [o[1] for o in out], [o[2] for o in out]
    return rows, feats
