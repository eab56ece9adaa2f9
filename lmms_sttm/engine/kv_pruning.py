"""DyCoke stage 2: decode-time pruning of the video's KV entries by the current token's attention.

The rule, as the DyCoke code runs it (``PrunableDynamicCache.dycoke_pruning`` with the decoder loop
of its ``modeling_qwen2``; ``sttm-method.md`` §11, "DyCoke (full)"), at every *decoding* forward
(one new token on a cache; the prompt forward is never pruned):

1. at layer ``L - 1`` the current token's attention over the whole cache (after its own entry was
   appended), mean over heads, restricted to the video entries: ``scores [N']``;
2. if this is the first decode step, or ``cos(scores, previous step's scores) < similarity``
   (authors: 0.9), layers ``>= L`` attend over the non-video entries plus the top
   ``int((1 - P) * N')`` video entries by ``scores``; otherwise this step is not pruned at all;
3. nothing is deleted: the full cache is kept (every layer still appends its new entry) and the
   choice is remade at the next step, so pruned entries can come back.

Authors' settings (STTM's runs): ``L = 3``, ``P = 0.8`` for both budgets (keep 20% of the video
entries). Deviation from the authors' code: the count is taken on the video entries actually cached
(``N'``, after stage 1) and the span is the cached video span; their ``image_token_length`` is the
pre-stage-1 count ``N``, so their span ``[start, start + N)`` also covers text after the video
(a quirk not reproduced). The previous-step scores are reset per answered question.

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
from lmms_sttm.engine.segmented_cache import SegmentedCache


@dataclass(frozen=True)
class KvPruning:
    """DyCoke stage-2 settings.

    Attributes:
        layer: L; scores from layer ``L - 1``, pruning in layers ``>= L`` (authors: 3).
        prune: P, fraction of the video entries dropped per pruned step (authors: 0.8).
        similarity: a step is pruned only when the cosine of its scores to the previous step's is
            below this (authors: 0.9); None prunes every step. The first step is always pruned.
    """

    layer: int = 3
    prune: float = 0.8
    similarity: float | None = 0.9

    def __post_init__(self) -> None:
        if self.layer < 1:
            raise ValueError(f"KV pruning reads layer L-1's attention: L must be >= 1, got {self.layer}")
        if not 0 <= self.prune < 1:
            raise ValueError(f"KV prune ratio must be in [0, 1), got {self.prune}")

    def keep_count(self, num_video: int) -> int:
        return int(num_video * (1.0 - self.prune))


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

    ``span`` is the video's ``(start, stop)`` in the cache layers ``>= L`` (segment 1). Per decode
    step it records the scores (``scores``), the kept cache indices (``keep_index``, None when the
    step was not pruned) and the video entries attended in layers ``>= L`` (``kept_per_step``).
    """

    def __init__(self, engine, config: KvPruning, span: tuple[int, int]) -> None:
        text = engine.text_model
        num_layers = len(text.layers)
        if not config.layer < num_layers:
            raise ValueError(f"KV pruning layer {config.layer} outside [1, {num_layers - 1}]")
        if config.layer - 1 < engine.layer:
            raise ValueError(
                f"KV pruning scores layer L-1 = {config.layer - 1} must not precede the reduction layer "
                f"k = {engine.layer} (its cache would hold the unreduced video)"
            )
        self.config, self.span, self.text = config, tuple(span), text
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
        cos, sin = (p[0].float() for p in kwargs["position_embeddings"])
        with torch.no_grad():
            h = module.input_layernorm(hidden[0, -1:])
            query = attn.q_proj(h).view(1, -1, d).float()
            self._query = _rope(query, cos[-1:], sin[-1:])[0]  # [Hq, d]
        return None

    def _decide(self, cache: SegmentedCache) -> None:
        layer = self.config.layer
        keys = cache.layers[layer - 1].keys  # includes the current token's entry
        start, stop = self.span
        if stop > keys.shape[-2]:
            raise ValueError(f"video span {self.span} exceeds the cache ({keys.shape[-2]} entries)")
        with torch.no_grad():
            scores = decode_token_attention(self.text.layers[layer - 1], self._query, keys, self.span)
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
        keep = self.config.keep_count(stop - start)
        top = torch.topk(scores, keep).indices.sort().values + start
        device = keys.device
        self.keep_index = torch.cat(
            [
                torch.arange(start, device=device),
                top.to(device),
                torch.arange(stop, keys.shape[-2], device=device),
            ]
        )
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
