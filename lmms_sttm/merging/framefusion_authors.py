"""FrameFusion as the STTM authors ran it (``llava/model/framefusion/main.py``, ``FrameFusion``): a
staged method of merges over several layers, then one prune.

The authors call ``FrameFusion.forward`` before layer 0's attention (on the input embeddings) and
after every layer's attention (before its MLP), in the prefill only. Each call, on the current
video tokens ``[n, C]`` in sequence order, each with its spatial position ``p`` (``t*H*W + p``
in the original grid):

1. **Merge** while not finished. Links are pairs of consecutive tokens of the same position in
   sequence order (for position ``p``, the tokens left of frames ``t1 < t2 < ...``); a link's score
   is its cosine ``dot / (|a| |b|)`` in the input dtype. ``share`` = links with cosine >= ``sim``
   (0.6) over ``n``, ``bound`` = the sparsity still allowed by the cost (``pruning_ratio``).
   If ``share < bound``: merge **every** qualifying link, append ``share`` to the sparsity list and
   finish merging when ``share < min_share`` (0.1). Otherwise merge the ``int(bound * n)`` most
   similar links (``torch.topk``; their scores may include non-links at -2 when few qualify, as
   in the authors' code) and finish both merging and pruning: no prune.
   A run of merged links ``r -> m1 -> ... -> mk`` becomes one token at ``r``'s row: the plain mean
   ``(r + m1 + ... + mk) / (k + 1)`` of the current states (a chain of means across calls).
2. **Prune** at the first call after merging finished (not after a merge-to-budget): keep the
   ``round(n * (1 - ratio))`` tokens with the highest last-query attention of that layer (mean
   over heads), ``ratio = pruning_ratio(sparsities, cost)``, in sequence order.

``pruning_ratio`` (their ``_compute_pruning_ratio``): with ``s_i = prod_{j<=i} (1 - sparsity_j)``,
``remain = L * cost - sum_i s_i``; raises when negative; 0 when ``remain / ((L - len) * s) > 1``;
else ``1 - remain / ((L - len) * s)``. The authors hard-code ``L = 28`` (the 7B models' depth);
here ``L`` is the model's number of layers.

Survivors keep their original position ids (and RoPE), on LLaVA as on Qwen2-VL. In this engine a
call after layer ``l``'s attention is an attention-point stage at ``l``; the prune reads layer
``l``'s attention, computed from its own projections (fp32; the authors' is the model dtype).
"""

from __future__ import annotations

import torch

from lmms_sttm.merging.groups import Grid, unit_rects
from lmms_sttm.merging.reduction import Reduction
from lmms_sttm.merging.stage import Stage

IGNORE = -2.0


def pruning_ratio(sparsities: list[float], cost: float, num_layers: int) -> float:
    """The sparsity the next layer needs so the whole prefill costs ``cost`` of the full model's."""
    s, total = 1.0, 0.0
    for value in sparsities:
        s *= 1 - value
        total += s
    remain = num_layers * cost - total
    if remain < 0:
        raise ValueError("The cost is too small")
    if remain / ((num_layers - len(sparsities)) * s) > 1:
        return 0
    return 1 - (remain / ((num_layers - len(sparsities)) * s))


def link_scores(
    hidden: torch.Tensor, patch: torch.Tensor, num_patches: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scores [n], order [n])``: tokens ordered by (position, sequence index); ``scores[i]`` is the
    cosine of ``order[i-1]`` and ``order[i]`` when they share a position, else -2 (``scores[0] = -2``)."""
    _, order = torch.where(patch == torch.arange(num_patches, device=patch.device)[:, None])
    a, b = hidden[order[:-1]], hidden[order[1:]]
    cos = torch.sum(a * b, dim=-1) / (torch.norm(a, dim=-1) * torch.norm(b, dim=-1))
    cos[patch[order[:-1]] != patch[order[1:]]] = IGNORE
    return torch.cat([torch.full((1,), IGNORE, dtype=hidden.dtype, device=hidden.device), cos]), order


def merge_links(
    hidden: torch.Tensor, order: torch.Tensor, links: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Merges each run of flagged links into the token before the run.

    Args:
        hidden: ``[n, C]`` current tokens in sequence order.
        order: ``[n]`` token index at each (position-ordered) link slot.
        links: ``[m]`` flagged slots (``slot i`` links ``order[i-1]`` and ``order[i]``).

    Returns:
        ``(merged [n, C], keep [n] bool, root [n])``: ``merged`` has each run's root row set to the
        run's plain mean (other rows as ``hidden``); ``root[j]`` is the row token ``j`` went into.
    """
    n = hidden.shape[0]
    device = hidden.device
    idx = torch.arange(n, device=device)
    if links.numel() == 0:
        return hidden, torch.ones(n, dtype=torch.bool, device=device), idx
    flag = torch.zeros(n, dtype=torch.bool, device=device)
    flag[links] = True
    starts = flag & ~torch.cat([flag.new_zeros(1), flag[:-1]])
    run_id = torch.cumsum(starts.long(), 0) - 1  # run of each flagged slot
    run_start = torch.nonzero(starts).squeeze(1)
    slots = torch.nonzero(flag).squeeze(1)  # members, ascending (each run contiguous)
    root_slot = run_start.index_select(0, run_id.index_select(0, slots)) - 1
    lengths = torch.bincount(run_id.index_select(0, slots), minlength=run_start.numel())
    merged = hidden.clone()
    roots = order.index_select(0, root_slot)
    merged.index_add_(0, roots, hidden.index_select(0, order.index_select(0, slots)))
    run_roots = order.index_select(0, run_start - 1)
    merged[run_roots] /= (lengths + 1).to(hidden.dtype)[:, None]
    keep = torch.ones(n, dtype=torch.bool, device=device)
    keep[order.index_select(0, slots)] = False
    root = idx.clone()
    root[order.index_select(0, slots)] = roots
    return merged, keep, root


def _plan(
    features: torch.Tensor, keep: torch.Tensor, root: torch.Tensor, grid: Grid, merge=None
) -> Reduction:
    """Plan over the current tokens: kept rows in sequence order, each token mapped to its root's row.

    ``merge``: ``values [n, C'] -> [n, C']`` the arithmetic that made ``features`` (None: the tokens' own)."""
    kept = torch.nonzero(keep).squeeze(1)
    rank = torch.cumsum(keep.long(), 0) - 1
    token_map = rank.index_select(0, root)
    return Reduction(
        features=features.index_select(0, kept),
        num_patches=torch.bincount(token_map, minlength=kept.numel()),
        tlbr=unit_rects(kept, grid),
        token_map=token_map,
        rep_index=kept,
        grid=grid,
        carry=lambda v: (v if merge is None else merge(v)).index_select(0, kept.to(v.device)),
    )


class FrameFusion:
    """The authors' FrameFusion as a staged method: ``cost`` (authors: 0.50 / 0.30) of the full
    prefill's token-layers, merge threshold ``sim`` (0.6), stop share ``min_share`` (0.1)."""

    position_rule = "original"
    needs_attention = True  # its prune reads the last prompt token's attention (query-aware)

    def __init__(self, cost: float, sim: float = 0.6, min_share: float = 0.1) -> None:
        if not 0 < cost <= 1:
            raise ValueError(f"FrameFusion cost must be in (0, 1], got {cost}")
        self.cost, self.sim, self.min_share = float(cost), float(sim), float(min_share)

    def start(self, grid: Grid, num_layers: int, layer: int) -> FrameFusionRun:
        return FrameFusionRun(self, tuple(grid), num_layers)

    def __repr__(self) -> str:
        return f"FrameFusion(cost={self.cost}, sim={self.sim}, min_share={self.min_share})"


class FrameFusionRun:
    """One prefill: call ``c`` is before layer 0 (``c = 0``) or after layer ``c - 1``'s attention.

    Attributes: ``sparsities`` (the authors' sparsity list), ``finish_merging``,
    ``finish_pruning``, ``calls`` (stages run so far), ``branch`` (``"budget"`` after a
    merge-to-budget, ``"prune"`` after the prune, else None).
    """

    def __init__(self, method: FrameFusion, grid: Grid, num_layers: int) -> None:
        self.method, self.grid, self.num_layers = method, grid, num_layers
        self.sparsities: list[float] = []
        self.finish_merging = self.finish_pruning = False
        self.calls = 0
        self.branch: str | None = None

    def next_stage(self) -> Stage | None:
        if self.finish_pruning:
            return None
        if self.calls == 0:
            return Stage(0, position_rule="original")
        layer = self.calls - 1
        if layer + 1 >= self.num_layers:  # no layer after it to see the reduction
            return None
        return Stage(layer, needs_attention=self.finish_merging, position_rule="original", point="attention")

    def run(self, hidden: torch.Tensor, grid, context) -> Reduction:
        """``hidden [n, C]`` current video tokens (sequence order) -> plan over them."""
        self.calls += 1
        tokens = context.tokens
        t, h, w = self.grid
        original = torch.arange(hidden.shape[0], device=hidden.device) if tokens is None else tokens.rep_index
        patch = original.to(hidden.device) % (h * w)
        if self.finish_merging:
            return self._prune(hidden, context.scores, grid)
        return self._merge(hidden, patch, grid)

    def _merge(self, hidden: torch.Tensor, patch: torch.Tensor, grid) -> Reduction:
        method, n = self.method, hidden.shape[0]
        bound = pruning_ratio(self.sparsities, method.cost, self.num_layers)
        scores, order = link_scores(hidden, patch, self.grid[1] * self.grid[2])
        links = torch.where(scores >= method.sim)[0]
        share = links.shape[0] / n
        if share < bound:
            self.sparsities.append(share)
            if share < method.min_share:
                self.finish_merging = True
        else:
            links = torch.sort(torch.topk(scores[None], int(bound * n)).indices[0]).values
            self.finish_merging = self.finish_pruning = True
            self.branch = "budget"
        merged, keep, root = merge_links(hidden, order, links)
        return _plan(merged, keep, root, grid, merge=lambda v: merge_links(v, order, links)[0])

    def _prune(self, hidden: torch.Tensor, scores: torch.Tensor, grid) -> Reduction:
        n = hidden.shape[0]
        ratio = pruning_ratio(self.sparsities, self.method.cost, self.num_layers)
        count = max(1, round(n * (1 - ratio)))
        top = torch.topk(scores.to(hidden.device), count).indices
        keep = torch.zeros(n, dtype=torch.bool, device=hidden.device)
        keep[top] = True
        kept = torch.nonzero(keep).squeeze(1)
        # a dropped token is attributed to the previous kept one (the first kept for leading ones)
        previous = torch.searchsorted(kept, torch.arange(n, device=hidden.device), right=True) - 1
        root = kept.index_select(0, previous.clamp_min(0))
        self.finish_pruning = True
        self.branch = "prune"
        return _plan(hidden, keep, root, grid)
