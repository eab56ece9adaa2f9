"""DyCoke stage 2: decode-time pruning of the video's KV entries by the current token's attention.

The STTM authors' rule (``token_merging_monkey_patch/dycoke_attn_monkey_patch.py``:
``PrunableDynamicCache.update_cache``/``dycoke_pruning`` driven by ``Qwen2Model_forward``;
their "DyCoke (full)" baseline), at every *decoding* forward (one new token on a cache;
the prompt forward is never pruned):

1. at layer ``L - 1`` the current token's attention over the whole cache (its own entry
   appended), mean over heads: ``scores``;
2. layers ``>= L`` attend over every entry outside the pruned range plus the top
   ``int(N * (1 - P))`` entries of the range by ``scores`` (``N``: the video's token count
   *before* stage 1, the authors' ``image_token_length``);
3. nothing is deleted: the full cache is kept (every layer still appends its new entry) and the
   choice is remade from the full cache at the next step.

The pruned range is ``[start, start + N)`` of the whole cache, clipped to its length (``start``: the
video's first entry). Because stage 1 left only ``N' < N`` video entries, this range also covers the
text after the video, the question, the generated tokens and the current token itself, which then
compete with the video entries and can be dropped. **This looks like a bug** of the authors' code
(DyCoke's own code counts the video after its merging); it is reproduced by default
(``span="authors"``) because the paper's DyCoke rows were produced by it. ``span="video"`` is the
intended rule: the range is the cached video entries ``[start, start + N')`` and the count
``int(N' * (1 - P))``. The authors' code also has a 0.9 cosine gate against the previous step's
scores, but their patch wraps the cache in a new object at every forward, so the stored scores are
lost and every step re-selects (``similarity=None``). ``similarity=0.9`` applies the gate (a step
whose scores have cosine >= 0.9 to the previous step's is not pruned; reset per question).

Presets (``dycoke_kv=`` model argument, :data:`MODES`): ``authors`` (default), ``video`` (the
intended range, every step), ``gated`` (``video`` plus the 0.9 gate: this package's earlier rule).
Authors' settings (STTM's runs): ``L = 3``, ``P = 0.8`` for both budgets. When the count exceeds
the range (exact budgets below 20%, a stage-1 plan keeping fewer than ``0.2 N`` tokens and little
text) the authors' ``topk`` fails; here the whole range is kept.

The engine's hooks (``engine/kv_pruning.KvPruner``) compute the scores and apply the kept entries.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

SPANS = ("authors", "video")


@dataclass(frozen=True)
class KvPruning:
    """DyCoke stage-2 settings.

    Attributes:
        layer: L; scores from layer ``L - 1``, pruning in layers ``>= L`` (authors: 3).
        prune: P, fraction of the range's count dropped per pruned step (authors: 0.8).
        similarity: a step is pruned only when the cosine of its scores to the previous step's is
            below this; None prunes every step (the authors' effective rule). The first step is
            always pruned.
        span: ``"authors"`` (range ``[start, start + N)`` of the whole cache, count from the
            pre-stage-1 ``N``) or ``"video"`` (the cached video entries and their count ``N'``).
    """

    layer: int = 3
    prune: float = 0.8
    similarity: float | None = None
    span: str = "authors"

    def __post_init__(self) -> None:
        if self.span not in SPANS:
            raise ValueError(f"KV pruning span {self.span!r} is not one of {list(SPANS)}")
        if self.similarity is not None and self.span != "video":
            raise ValueError(
                "the KV pruning similarity gate compares equal-length scores: it needs span='video'"
            )
        if self.layer < 1:
            raise ValueError(f"KV pruning reads layer L-1's attention: L must be >= 1, got {self.layer}")
        if not 0 <= self.prune < 1:
            raise ValueError(f"KV prune ratio must be in [0, 1), got {self.prune}")

    def keep_count(self, num_video: int) -> int:
        return int(num_video * (1.0 - self.prune))

    def pruned_range(self, video: tuple[int, int], total: int, num_original: int | None) -> tuple[int, int]:
        """``(stop, base)``: the pruned range is ``[video[0], stop)`` of a ``total``-entry cache and
        the kept count is ``keep_count(base)`` (authors: ``N`` from the video start, clipped)."""
        start, stop = video
        if self.span == "authors":
            return min(start + num_original, total), num_original
        return stop, stop - start


def keep_entries(scores: torch.Tensor, start: int, total: int, keep: int) -> torch.Tensor:
    """Cache indices attended by layers ``>= L``: every entry outside ``[start, start + len(scores))``
    plus the ``keep`` best-scored entries inside it, increasing ``[total - len(scores) + keep]``
    (ties: ``torch.topk``'s choice)."""
    pruned = torch.arange(start, start + scores.shape[0], device=scores.device)
    return keep_entry_set(scores, pruned, total, keep)


def keep_entry_set(scores: torch.Tensor, pruned: torch.Tensor, total: int, keep: int) -> torch.Tensor:
    """As :func:`keep_entries` for any set of pruned entries ``pruned [m]`` (increasing; the video's
    entries spread over frame blocks): every other entry plus the ``keep`` best-scored of ``pruned``."""
    device = scores.device
    pruned = pruned.to(device)
    outside = torch.ones(total, dtype=torch.bool, device=device)
    outside[pruned] = False
    top = pruned.index_select(0, torch.topk(scores, keep).indices)
    outside[top] = True
    return outside.nonzero().flatten()


#: the ``dycoke_kv=`` presets (authors' L = 3, P = 0.8)
MODES = {
    "authors": KvPruning(layer=3, prune=0.8, similarity=None, span="authors"),
    "video": KvPruning(layer=3, prune=0.8, similarity=None, span="video"),
    "gated": KvPruning(layer=3, prune=0.8, similarity=0.9, span="video"),
}
