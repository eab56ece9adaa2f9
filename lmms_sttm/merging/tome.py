"""ToMe, video version (STTM authors' LLM-layer port): bipartite soft matching over all T*H*W tokens.

Each round splits the current tokens (in raster order of their representatives) into alternating
sets A (even positions) and B (odd), matches every A token to its most cosine-similar B token, and
merges the ``r`` best-matched A tokens into their partners with patch-count-weighted means, where
``r = min(|A|, M - target)``. Rounds repeat until ``target = ceil(keep * N)`` tokens remain (one
round for keep >= 0.5). The result is the plain mean of the covered original tokens per group.

Deviation from the authors' code: their output order is scrambled (unmerged A, then B) and later
rounds alternate over that order; here tokens stay in raster order of their representatives.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lmms_sttm.merging.groups import Grid, from_groups
from lmms_sttm.merging.reduction import Reduction

_CHUNK = 4096  # rows of the A x B similarity computed at once (bounds memory at N = 25k)


def _best_partner(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit rows ``a [Na, C]``, ``b [Nb, C]`` -> ``(best cosine [Na], best B index [Na])``."""
    vals, idxs = [], []
    for start in range(0, a.shape[0], _CHUNK):
        v, i = (a[start : start + _CHUNK] @ b.T).max(dim=1)
        vals.append(v)
        idxs.append(i)
    return torch.cat(vals), torch.cat(idxs)


def bipartite_assign(features: torch.Tensor, sizes: torch.Tensor, target: int) -> torch.Tensor:
    """Rounds of bipartite soft matching down to ``target`` groups.

    Args:
        features: ``[M, C]`` token features (any float dtype; matched in float32).
        sizes: ``[M]`` int64 patch counts (weights of the means).
        target: groups to keep, ``1 <= target <= M``.

    Returns:
        ``[M]`` int64 group label in ``[0, target)`` per input token; labels are ordered by the
        smallest member index.
    """
    m = features.shape[0]
    if not 1 <= target <= m:
        raise ValueError(f"ToMe target {target} outside [1, {m}]")
    dev = features.device
    feats = features.float()
    weight = sizes.float()
    label = torch.arange(m, device=dev)  # input token -> current token
    while feats.shape[0] > target:
        cur = feats.shape[0]
        a_idx = torch.arange(0, cur, 2, device=dev)
        b_idx = torch.arange(1, cur, 2, device=dev)
        if b_idx.numel() == 0:  # one token left, target 0 is impossible
            break
        unit = F.normalize(feats, dim=-1)
        score, partner = _best_partner(unit.index_select(0, a_idx), unit.index_select(0, b_idx))
        r = min(a_idx.numel(), cur - target)
        merged_a = torch.topk(score, r).indices
        dest = torch.arange(cur, device=dev)
        dest[a_idx[merged_a]] = b_idx[partner[merged_a]]
        survive = dest == torch.arange(cur, device=dev)
        new_index = torch.cumsum(survive, 0) - 1  # survivors keep their relative order
        new_of_cur = new_index.index_select(0, dest)
        count = int(survive.sum())
        sums = torch.zeros(count, feats.shape[1], device=dev).index_add_(
            0, new_of_cur, feats * weight[:, None]
        )
        weight = torch.zeros(count, device=dev).index_add_(0, new_of_cur, weight)
        feats = sums / weight[:, None]
        label = new_of_cur.index_select(0, label)
    return label


def tome_video(hidden: torch.Tensor, grid: Grid, keep: float) -> Reduction:
    """ToMe over the whole video: ``hidden [T*H*W, C]`` -> ``Reduction`` with ``ceil(keep * N)`` tokens."""
    n = hidden.shape[0]
    target = max(1, min(n, math.ceil(keep * n - 1e-9)))
    ones = torch.ones(n, dtype=torch.long, device=hidden.device)
    return from_groups(hidden, bipartite_assign(hidden, ones, target), grid)


class TomeReducer:
    """Engine reducer for video ToMe keeping ``keep`` of the tokens (authors: 0.50 / 0.30)."""

    needs_attention = False

    def __init__(self, keep: float) -> None:
        if not 0 < keep <= 1:
            raise ValueError(f"ToMe keep fraction must be in (0, 1], got {keep}")
        self.keep = float(keep)

    def __call__(self, hidden: torch.Tensor, grid: Grid) -> Reduction:
        return tome_video(hidden, grid, self.keep)

    def __repr__(self) -> str:
        return f"TomeReducer(keep={self.keep})"
