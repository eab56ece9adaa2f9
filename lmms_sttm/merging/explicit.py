"""A ``Reduction`` from explicit groups: each kept token's representative, features and members.

HoliTom and FlashVID compute each kept token's feature their own way (a weighted blend of a
cluster centre and its members, a tree sum over a count), so the plan takes that arithmetic as a
function ``make(values [n, C']) -> [M, C']``: the features are ``make(hidden)``, and a tensor the
tokens carry (Qwen3-VL's DeepStack features) goes through the same function (``Reduction.carry``). Tokens a method drops (pruned, not merged anywhere) are attributed, for bookkeeping only,
to the kept token whose representative is the nearest one before them in raster order (the
first kept token for those before every representative), as ``groups.previous_kept_parent``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from lmms_sttm.merging.groups import Grid, unit_rects
from lmms_sttm.merging.reduction import Reduction


def from_explicit(
    hidden: torch.Tensor,
    reps: torch.Tensor,
    labels: torch.Tensor,
    make: Callable[[torch.Tensor], torch.Tensor],
    grid: Grid,
) -> Reduction:
    """The plan of ``M`` kept tokens over ``n`` original tokens.

    Args:
        hidden: ``[n, C]`` the original tokens (``T*H*W`` at a first stage, the current tokens later).
        reps: ``[M]`` distinct original index of each kept token's representative.
        labels: ``[n]`` kept token (``0..M-1``, the row of ``reps``) covering each original token,
            ``-1`` for a dropped token; ``labels[reps[i]] == i``.
        make: ``values [n, C'] -> [M, C']`` each kept token's value from the original tokens' (in
            ``values``' dtype), row ``i`` for ``reps[i]``; the features are ``make(hidden)``.
        grid: ``(T, H, W)`` with ``T*H*W == n``.

    Returns: the plan with rows in increasing representative order.
    """
    features = make(hidden)
    if features.shape[0] != reps.numel():
        raise ValueError(f"{features.shape[0]} features for {reps.numel()} kept tokens")
    device = features.device
    reps = reps.to(device=device, dtype=torch.long)
    labels = labels.to(device=device, dtype=torch.long)
    if reps.numel() == 0:
        raise ValueError("a plan must keep at least one token")
    order = torch.argsort(reps)
    rep_sorted = reps.index_select(0, order)
    row_of_label = torch.empty_like(order)
    row_of_label[order] = torch.arange(order.numel(), device=device)
    dropped = labels < 0
    token_map = torch.where(
        dropped, torch.zeros_like(labels), row_of_label.index_select(0, labels.clamp_min(0))
    )
    if bool(dropped.any()):
        idx = torch.nonzero(dropped).squeeze(1)
        before = torch.searchsorted(rep_sorted, idx, right=True) - 1
        token_map[idx] = before.clamp_min(0)
    return Reduction(
        features=features.index_select(0, order),
        num_patches=torch.bincount(token_map, minlength=rep_sorted.numel()),
        tlbr=unit_rects(rep_sorted, grid),
        token_map=token_map,
        rep_index=rep_sorted,
        grid=tuple(grid),
        carry=lambda values: make(values).index_select(0, order.to(values.device)),
    )
