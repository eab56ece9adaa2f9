"""DyCoke stage 2 in the engine: the decode-time hooks that apply a ``KvPruning`` decision.

The rule itself (which cache entries layers ``>= L`` attend at each decode step) is the method's
and lives in ``merging/dycoke_kv.py``. Here, at every *decoding* forward (one new token on a cache;
the prompt forward is never pruned): layer ``L - 1``'s own ``q_proj`` gives the current token's
query (RoPE applied), the scores over the pruned range come from that layer's cached keys (no
attention map is materialised, so the model keeps running with sdpa or flash attention), and
layers ``>= L`` get the kept entries gathered by ``SegmentedCache.update`` (a view set for the
step); positions are untouched (cached keys carry their RoPE).

On a hybrid decoder (Qwen3.5) the scores come from the nearest full-attention layer at or after
``L - 1`` (``engine/hybrid.py``) and the pruning starts right after it; Gated DeltaNet layers hold
no entries to prune (their recurrent state has absorbed every token), so the pruning acts on the
full-attention layers from there on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lmms_sttm.engine.attention_scores import decode_token_attention, token_query
from lmms_sttm.engine.hf_compat import read_cache
from lmms_sttm.engine.hybrid import kv_pruning_layer, layer_kinds
from lmms_sttm.engine.placement import on_layer_device
from lmms_sttm.engine.segmented_cache import SegmentedCache
from lmms_sttm.merging.dycoke_kv import MODES, SPANS, KvPruning, keep_entries, keep_entry_set

__all__ = ["MODES", "SPANS", "KvPruner", "KvPruning", "decode_token_attention", "keep_entries"]


class KvPruner:
    """Stage-2 hooks on an engine's text decoder for one answered question; ``remove()`` when done.

    ``span`` is the video's ``(start, stop)`` in the cache layers ``>= L`` (the last segment: every
    layer from ``last_split`` on holds it, so ``L - 1 >= last_split`` is required);
    ``num_original`` the video's token count before any reduction (needed by ``span="authors"``).
    Per decode step it records the scores over the pruned range (``scores``), the kept cache indices
    (``keep_index``, None when the step was not pruned) and the entries of the pruned range attended
    in layers ``>= L`` (``kept_per_step``).
    """

    def __init__(
        self,
        engine,
        config: KvPruning,
        span: tuple[int, int],
        num_original: int | None = None,
        last_split: int | None = None,
        rows: torch.Tensor | None = None,
    ) -> None:
        text = engine.text_model
        num_layers = len(text.layers)
        if not config.layer < num_layers:
            raise ValueError(f"KV pruning layer {config.layer} outside [1, {num_layers - 1}]")
        # L: the first pruned layer (after the full-attention layer whose scores decide)
        self.layer = kv_pruning_layer(layer_kinds(text), config.layer)
        last_split = engine.layer if last_split is None else last_split
        if self.layer - 1 < last_split:
            raise ValueError(
                f"KV pruning scores layer L-1 = {self.layer - 1} must not precede the last split "
                f"{last_split} (its cache would hold the video before the last stage, and the span "
                "of the pruned layers would not be one)"
            )
        if config.span == "authors" and not num_original:
            raise ValueError("KV pruning span='authors' needs the video's original token count")
        self.config, self.span, self.text = config, tuple(span), text
        # the video's entries when they are not one run (frame blocks): span="video" prunes exactly them
        blocks = rows is not None and int(rows.numel()) != span[1] - span[0]
        contiguous = (
            rows is None or not blocks and bool((rows == torch.arange(*span, device=rows.device)).all())
        )
        self.rows = None if contiguous else rows
        self.num_original = num_original
        self.scores: torch.Tensor | None = None
        self.keep_index: torch.Tensor | None = None
        self.kept_per_step: list[int] = []
        self._query: torch.Tensor | None = None
        self._cache: SegmentedCache | None = None
        layer = self.layer
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
        hidden, rotary = on_layer_device(
            module, hidden, kwargs["position_embeddings"]
        )  # accelerate moves later
        with torch.no_grad():
            self._query = token_query(module, hidden, rotary)  # [Hq, d]
        return None

    def _decide(self, cache: SegmentedCache) -> None:
        layer = self.layer
        keys = cache.layers[layer - 1].keys  # includes the current token's entry
        start, stop = self.span
        total = keys.shape[-2]
        if stop > total:
            raise ValueError(f"video span {self.span} exceeds the cache ({total} entries)")
        stop, base = self.config.pruned_range(self.span, total, self.num_original)
        pruned = (start, stop)
        if self.rows is not None and self.config.span == "video":
            pruned = self.rows
        with torch.no_grad():
            scores = decode_token_attention(self.text.layers[layer - 1], self._query, keys, pruned)
        previous, self.scores = self.scores, scores
        threshold = self.config.similarity
        prune = previous is None or threshold is None
        if not prune:
            prune = bool(F.cosine_similarity(scores, previous, dim=0) < threshold)
        self._query = None
        if not prune:
            self.keep_index = None
            self.kept_per_step.append(scores.shape[0])
            return
        keep = min(self.config.keep_count(base), scores.shape[0])
        if isinstance(pruned, tuple):
            self.keep_index = keep_entries(scores, start, total, keep).to(keys.device)
        else:
            self.keep_index = keep_entry_set(scores, pruned, total, keep).to(keys.device)
        self.kept_per_step.append(keep)
        cache.set_entry_view(layer, self.keep_index)

    def _make_layer_hook(self, index: int):
        def hook(module, args, kwargs):
            hidden = args[0] if args else kwargs["hidden_states"]
            cache = read_cache(kwargs)
            if not self._decode_step(hidden, cache):
                return None
            if index == self.layer:
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
