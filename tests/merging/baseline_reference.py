"""Loop-based references of the baselines as the STTM authors run them (written from the rules in
``sttm-method.md`` §11 and the module docstrings, token by token, for small inputs).

Each returns plain Python lists so that the vectorised code is compared with something built
differently: the authors' ToMe rounds, DyCoke stage 1's frame loops and FastV's ranking.
"""

from __future__ import annotations

import math

import torch


def tome_authors(x: torch.Tensor, prune: float) -> tuple[list[list[int]], list[int]]:
    """``x [N, C]`` -> (members of each output row, in row order; destination of each row)."""
    n = x.shape[0]
    target = math.ceil(n * (1 - prune))
    rows = [[i] for i in range(n)]  # members per current row
    dest = list(range(n))
    sums = [x[i].double().clone() for i in range(n)]
    first = True
    while first or len(rows) > target:
        first = False
        m = len(rows)
        r = min(m - target, m // 2)
        if r <= 0:
            break
        means = [sums[i] / len(rows[i]) for i in range(m)]
        a_pos, b_pos = list(range(0, m, 2)), list(range(1, m, 2))
        best = []
        for a in a_pos:
            ua = means[a] / means[a].norm()
            sims = [float(ua @ (means[b] / means[b].norm())) for b in b_pos]
            j = max(range(len(b_pos)), key=lambda k: (sims[k], -k))  # highest, then lowest B index
            best.append((sims[j], j))
        edge = sorted(range(len(a_pos)), key=lambda k: (-best[k][0], k))
        src, unm = edge[:r], edge[r:]
        new_rows = [list(rows[a_pos[k]]) for k in unm] + [list(rows[b]) for b in b_pos]
        new_sums = [sums[a_pos[k]].clone() for k in unm] + [sums[b].clone() for b in b_pos]
        new_dest = [dest[a_pos[k]] for k in unm] + [dest[b] for b in b_pos]
        for k in src:
            target_row = len(unm) + best[k][1]
            new_rows[target_row] += rows[a_pos[k]]
            new_sums[target_row] += sums[a_pos[k]]
        rows, sums, dest = new_rows, new_sums, new_dest
    return [sorted(members) for members in rows], dest


def dycoke_authors(x: torch.Tensor, num_frames: int, prune: float) -> list[int]:
    """``x [T*HW, C]`` -> original indices of the kept tokens in the authors' row order."""
    hw = x.shape[0] // num_frames
    k = int((1 - prune) * hw)
    frames = x.view(num_frames, hw, -1).double()

    def least_similar(f: int, ref: int) -> list[int]:
        sims = [
            float(torch.nn.functional.cosine_similarity(frames[f, p], frames[ref, p], dim=0))
            for p in range(hw)
        ]
        return sorted(range(hw), key=lambda p: (sims[p], p))[:k]

    kept: list[list[int]] = []
    for i in range(0, num_frames - 1, 2):
        kept.append(list(range(hw)))
        kept.append(least_similar(i + 1, i))
    if len(kept) < num_frames:
        kept.append(list(range(hw)))
    for i in range(0, num_frames - 4, 4):
        kept[i + 2] = least_similar(i + 2, i)
    return [f * hw + p for f in range(num_frames) for p in kept[f]]


def fastv_authors(scores: torch.Tensor, evict: float) -> list[int]:
    """Kept indices, increasing: the ``round(N * (1 - evict))`` highest scores (ties: lower index)."""
    n = scores.shape[0]
    count = round(n * (1 - evict))
    ranked = sorted(range(n), key=lambda i: (-float(scores[i]), i))
    return sorted(ranked[:count])
