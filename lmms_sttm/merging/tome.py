"""ToMe, video version (the STTM authors' LLM-layer port): bipartite soft matching over all T*H*W tokens.

Default (``order="authors"``, ``tome_token_merger.tome_per_video`` with ``bipartite_soft_matching``
of the STTM repository): the target is ``ceil(N * (1 - p))`` for prune ratio ``p`` in the authors'
float arithmetic (``1 - 0.7 = 0.30000000000000004``: 673 tokens of N = 2240, not 672). Each round
takes the current ``M`` tokens *in their current order*, A = even positions, B = odd, matches every
A token to its most cosine-similar B token (ties: the lowest B index), sorts A by that similarity
(descending; ties: lower A position first) and merges the first ``r = min(M - target, M // 2)``
into their partners with size-weighted means. The output order is the remaining A tokens in that
similarity order, then all B tokens in their order; the next round splits this order again.
Rounds repeat until ``target`` tokens remain. The plan lists its rows in this final order (the
order the authors feed to the LLM; ``rep_index`` is then not increasing) and sets
``position_index`` to each token's merge destination (the B token it ended in, followed through
the rounds): the authors' Qwen2-VL patch gives a merged token that token's M-RoPE id, and their
LLaVA patch renumbers the rows 0..N'-1 in this order.

``order="raster"`` (this package's earlier variant): every round splits the tokens in raster order
of their representatives, merges ``r = min(ceil(M / 2), M - target)`` A tokens, and the plan's
rows stay in raster order (``bipartite_assign``; also the exact-budget trimmer's merge).

Tie rule: on exact ties the authors' ``argsort`` (not stable) and ``max`` are implementation-defined;
here A tokens tie-break by position and partners by the lowest index. Features are the plain means
of the covered original tokens (equal to the authors' chained size-weighted means up to rounding).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lmms_sttm.merging.groups import Grid, from_groups, group_mean, unit_rects
from lmms_sttm.merging.reduction import Reduction

_CHUNK = 4096  # rows of the A x B similarity computed at once (bounds memory at N = 25k)
ORDERS = ("authors", "raster")


def _best_partner(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit rows ``a [Na, C]``, ``b [Nb, C]`` -> ``(best cosine [Na], best B index [Na])``."""
    vals, idxs = [], []
    for start in range(0, a.shape[0], _CHUNK):
        v, i = (a[start : start + _CHUNK] @ b.T).max(dim=1)
        vals.append(v)
        idxs.append(i)
    return torch.cat(vals), torch.cat(idxs)


def authors_target(n: int, prune: float) -> int:
    """``ceil(n * (1 - prune))`` exactly as the authors compute it (no tolerance), clamped to ``[1, n]``."""
    return max(1, min(n, math.ceil(n * (1 - prune))))


def bipartite_assign(features: torch.Tensor, sizes: torch.Tensor, target: int) -> torch.Tensor:
    """Raster-order rounds of bipartite soft matching down to ``target`` groups.

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


def authors_rounds(features: torch.Tensor, target: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The authors' rounds (``tome_per_video``) on ``features [N, C]`` down to ``target`` tokens.

    Returns:
        ``(label [N], destination [target])`` int64: the output row of every input token, and per
        output row the input index of its merge destination (the authors' ``token_idx``).
    """
    n = features.shape[0]
    if not 1 <= target <= n:
        raise ValueError(f"ToMe target {target} outside [1, {n}]")
    dev = features.device
    feats = features.float()
    weight = torch.ones(n, device=dev)
    dest_of_row = torch.arange(n, device=dev)  # current row -> original index of its destination
    label = torch.arange(n, device=dev)  # input token -> current row
    first = True
    while first or feats.shape[0] > target:
        first = False
        cur = feats.shape[0]
        r = min(cur - target, cur // 2)
        if r <= 0:
            break
        a_rows = torch.arange(0, cur, 2, device=dev)
        b_rows = torch.arange(1, cur, 2, device=dev)
        unit = F.normalize(feats, dim=-1)
        score, partner = _best_partner(unit.index_select(0, a_rows), unit.index_select(0, b_rows))
        edge = torch.argsort(score, descending=True, stable=True)  # A positions, most similar first
        src, unm = edge[:r], edge[r:]
        num_unm, num_b = unm.numel(), b_rows.numel()
        new_row = torch.empty(cur, dtype=torch.long, device=dev)
        new_row[a_rows.index_select(0, unm)] = torch.arange(num_unm, device=dev)
        new_row[b_rows] = num_unm + torch.arange(num_b, device=dev)
        new_row[a_rows.index_select(0, src)] = num_unm + partner.index_select(0, src)
        count = num_unm + num_b
        sums = torch.zeros(count, feats.shape[1], device=dev).index_add_(0, new_row, feats * weight[:, None])
        weight = torch.zeros(count, device=dev).index_add_(0, new_row, weight)
        feats = sums / weight[:, None]
        kept_rows = torch.cat([a_rows.index_select(0, unm), b_rows])  # old row of each new row
        dest_of_row = dest_of_row.index_select(0, kept_rows)
        label = new_row.index_select(0, label)
    return label, dest_of_row


def _authors_plan(hidden: torch.Tensor, grid: Grid, target: int) -> Reduction:
    """Rows in the authors' output order; ``rep_index`` = smallest member, ``position_index`` = destination."""
    n = hidden.shape[0]
    label, destination = authors_rounds(hidden, target)
    count = destination.numel()
    rep = torch.full((count,), n, dtype=torch.long, device=hidden.device)
    rep.scatter_reduce_(0, label, torch.arange(n, device=hidden.device), reduce="amin")
    return Reduction(
        features=group_mean(hidden, label, count),
        num_patches=torch.bincount(label, minlength=count),
        tlbr=unit_rects(rep, grid),
        token_map=label,
        rep_index=rep,
        grid=tuple(grid),
        position_index=destination,
        carry=lambda v: group_mean(v, label.to(v.device), count),
    )


def tome_video(
    hidden: torch.Tensor,
    grid: Grid,
    keep: float | None = None,
    *,
    prune: float | None = None,
    order: str = "authors",
) -> Reduction:
    """ToMe over the whole video: ``hidden [T*H*W, C]`` -> ``Reduction``.

    Exactly one of ``prune`` (the authors' ratio: ``ceil(N * (1 - prune))`` tokens) or ``keep``
    (``ceil(keep * N)``, for exact budgets) gives the count; ``order`` is ``"authors"`` or ``"raster"``.
    """
    if (prune is None) == (keep is None):
        raise ValueError("ToMe needs exactly one of keep= or prune=")
    if order not in ORDERS:
        raise ValueError(f"ToMe order {order!r} is not one of {list(ORDERS)}")
    n = hidden.shape[0]
    target = authors_target(n, prune) if prune is not None else max(1, min(n, math.ceil(keep * n - 1e-9)))
    if order == "authors":
        return _authors_plan(hidden, grid, target)
    ones = torch.ones(n, dtype=torch.long, device=hidden.device)
    return from_groups(hidden, bipartite_assign(hidden, ones, target), grid)


class TomeReducer:
    """Engine reducer for video ToMe: the authors' prune ratio ``prune`` (0.50 / 0.70) or, for exact
    budgets, a keep fraction ``keep``; ``order`` as in :func:`tome_video`."""

    needs_attention = False

    def __init__(
        self, keep: float | None = None, *, prune: float | None = None, order: str = "authors"
    ) -> None:
        if (prune is None) == (keep is None):
            raise ValueError("ToMe needs exactly one of keep= or prune=")
        if keep is not None and not 0 < keep <= 1:
            raise ValueError(f"ToMe keep fraction must be in (0, 1], got {keep}")
        if prune is not None and not 0 <= prune < 1:
            raise ValueError(f"ToMe prune ratio must be in [0, 1), got {prune}")
        if order not in ORDERS:
            raise ValueError(f"ToMe order {order!r} is not one of {list(ORDERS)}")
        self.keep = None if keep is None else float(keep)
        self.prune = None if prune is None else float(prune)
        self.order = order

    def __call__(self, hidden: torch.Tensor, grid: Grid) -> Reduction:
        return tome_video(hidden, grid, self.keep, prune=self.prune, order=self.order)

    def __repr__(self) -> str:
        return f"TomeReducer(keep={self.keep}, prune={self.prune}, order={self.order!r})"
