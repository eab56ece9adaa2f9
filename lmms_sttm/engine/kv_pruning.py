"""DyCoke stage 2: decode-time pruning of the video's KV entries by the current token's attention.

The STTM authors' rule (``token_merging_monkey_patch/dycoke_attn_monkey_patch.py``:
``PrunableDynamicCache.update_cache``/``dycoke_pruning`` driven by ``Qwen2Model_forward``;
``sttm-method.md`` §11, "DyCoke (full)"), at every *decoding* forward (one new token on a cache;
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

Scores come from layer ``L - 1``'s own ``q_proj`` (the current token) and that layer's cached keys
(RoPE already applied): no attention map is materialised, so the model keeps running with sdpa or
flash attention. Layers ``>= L`` get the kept entries gathered by ``SegmentedCache.update`` (a
view set for the step); positions are untouched (cached keys carry their RoPE).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lmms_sttm.engine.attention_scores import _rope
from lmms_sttm.engine.hf_compat import read_cache
from lmms_sttm.engine.placement import on_layer_device
from lmms_sttm.engine.segmented_cache import SegmentedCache

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
    stop, device = start + scores.shape[0], scores.device
    top = torch.topk(scores, keep).indices.sort().values + start
    return torch.cat([torch.arange(start, device=device), top, torch.arange(stop, total, device=device)])


#: the ``dycoke_kv=`` presets (authors' L = 3, P = 0.8)
MODES = {
    "authors": KvPruning(layer=3, prune=0.8, similarity=None, span="authors"),
    "video": KvPruning(layer=3, prune=0.8, similarity=None, span="video"),
    "gated": KvPruning(layer=3, prune=0.8, similarity=0.9, span="video"),
}


def decode_token_attention(
    layer: nn.Module, query: torch.Tensor, keys: torch.Tensor, span: tuple[int, int]
) -> torch.Tensor:
    """Mean-over-heads attention of one query over cached ``keys``, restricted to ``span``.

    Args:
        layer: the decoder layer (for ``self_attn.scaling``).
        query: ``[Hq, d]`` float32, RoPE applied.
        keys: ``[1, Hkv, S, d]`` cached keys of that layer (the query's own entry included).
        span: ``(start, stop)`` video entries.

    Returns:
        ``[stop - start]`` float32 (softmax over all ``S`` entries).
    """
    heads, d = query.shape
    kv_heads = keys.shape[1]
    grouped = query.view(kv_heads, heads // kv_heads, d)
    logits = torch.einsum("kgd,ksd->kgs", grouped, keys[0].float()) * layer.self_attn.scaling
    probs = torch.softmax(logits, dim=-1).reshape(heads, -1)
    start, stop = span
    return probs[:, start:stop].mean(dim=0)


class KvPruner:
    """Stage-2 hooks on an engine's text decoder for one answered question; ``remove()`` when done.

    ``span`` is the video's ``(start, stop)`` in the cache layers ``>= L`` (segment 1);
    ``num_original`` the video's token count before any reduction (needed by ``span="authors"``).
    Per decode step it records the scores over the pruned range (``scores``), the kept cache indices
    (``keep_index``, None when the step was not pruned) and the entries of the pruned range attended
    in layers ``>= L`` (``kept_per_step``).
    """

    def __init__(
        self, engine, config: KvPruning, span: tuple[int, int], num_original: int | None = None
    ) -> None:
        text = engine.text_model
        num_layers = len(text.layers)
        if not config.layer < num_layers:
            raise ValueError(f"KV pruning layer {config.layer} outside [1, {num_layers - 1}]")
        if config.layer - 1 < engine.layer:
            raise ValueError(
                f"KV pruning scores layer L-1 = {config.layer - 1} must not precede the reduction layer "
                f"k = {engine.layer} (its cache would hold the unreduced video)"
            )
        if config.span == "authors" and not num_original:
            raise ValueError("KV pruning span='authors' needs the video's original token count")
        self.config, self.span, self.text = config, tuple(span), text
        self.num_original = num_original
        self.scores: torch.Tensor | None = None
        self.keep_index: torch.Tensor | None = None
        self.kept_per_step: list[int] = []
        self._query: torch.Tensor | None = None
        self._cache: SegmentedCache | None = None
        layer = config.layer
        self._handles = [
            text.layers[layer - 1].register_forward_pre_hook(self._grab_query, with_kwargs=True),
            text.register_forward_hook(self._clear, always_call=True),
        ]
        for index in range(layer, num_layers):
            hook = self._make_layer_hook(index)
            self._handles.append(text.layers[index].register_forward_pre_hook(hook, with_kwargs=True))

    def remove(self) -> None:
        if self._cache is not None:
            self._cache.clear_entry_view()
            self._cache = None
        for handle in self._handles:
            handle.remove()
        self._handles = []

    # ----------------------------------------------------------------- hooks
    @staticmethod
    def _decode_step(hidden: torch.Tensor, cache) -> bool:
        return isinstance(cache, SegmentedCache) and hidden.shape[1] == 1 and cache.logical_length > 0

    def _grab_query(self, module, args, kwargs):
        hidden = args[0] if args else kwargs["hidden_states"]
        cache = read_cache(kwargs)
        self._query = None
        if isinstance(cache, SegmentedCache):
            cache.clear_entry_view()
            self._cache = cache
        if not self._decode_step(hidden, cache):
            return None
        attn, d = module.self_attn, module.self_attn.head_dim
        hidden, rotary = on_layer_device(
            module, hidden, kwargs["position_embeddings"]
        )  # accelerate moves later
        cos, sin = (p[0].float() for p in rotary)
        with torch.no_grad():
            h = module.input_layernorm(hidden[0, -1:])
            query = attn.q_proj(h).view(1, -1, d).float()
            self._query = _rope(query, cos[-1:], sin[-1:])[0]  # [Hq, d]
        return None

    def _decide(self, cache: SegmentedCache) -> None:
        layer = self.config.layer
        keys = cache.layers[layer - 1].keys  # includes the current token's entry
        start, stop = self.span
        total = keys.shape[-2]
        if stop > total:
            raise ValueError(f"video span {self.span} exceeds the cache ({total} entries)")
        stop, base = self.config.pruned_range(self.span, total, self.num_original)
        with torch.no_grad():
            scores = decode_token_attention(self.text.layers[layer - 1], self._query, keys, (start, stop))
        previous, self.scores = self.scores, scores
        threshold = self.config.similarity
        prune = previous is None or threshold is None
        if not prune:
            prune = bool(F.cosine_similarity(scores, previous, dim=0) < threshold)
        self._query = None
        if not prune:
            self.keep_index = None
            self.kept_per_step.append(stop - start)
            return
        keep = min(self.config.keep_count(base), stop - start)
        self.keep_index = keep_entries(scores, start, total, keep).to(keys.device)
        self.kept_per_step.append(keep)
        cache.set_entry_view(layer, self.keep_index)

    def _make_layer_hook(self, index: int):
        def hook(module, args, kwargs):
            hidden = args[0] if args else kwargs["hidden_states"]
            cache = read_cache(kwargs)
            if not self._decode_step(hidden, cache):
                return None
            if index == self.config.layer:
                if self._query is None:
                    raise RuntimeError("KV pruning: layer L-1 did not run on this decode step")
                self._decide(cache)
            view = cache.entry_view
            mask = kwargs.get("attention_mask")
            if view is None or not isinstance(mask, torch.Tensor):
                return None
            kwargs = dict(kwargs)
            kwargs["attention_mask"] = mask.index_select(-1, view[1].to(mask.device))
            return args, kwargs

        return hook

    def _clear(self, module, args, output):
        cache, self._cache = self._cache, None
        if cache is not None:
            cache.clear_entry_view()
