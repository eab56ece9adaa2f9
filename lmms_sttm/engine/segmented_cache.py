"""A KV cache in segments: layers below the first split hold the full sequence, each later segment
(from its split layer to the next split) the sequence after one more reduction stage.

With one stage at layer k the splits are ``[k]``: segment 0 = layers ``< k``, segment 1 = layers
``>= k``. A staged method sets the splits of its reducing prefill (``set_splits``). Layer objects
are transformers' own ``DynamicLayer`` s (one per decoder layer); only the bookkeeping differs from
``DynamicCache``:

- ``logical_length``: tokens of the caller's sequence seen so far (= ``input_ids`` length). It is
  what ``get_seq_length()`` reports, so ``generate`` slices new inputs correctly even when every
  layer is reduced (k = 0). Physical lengths: ``segment_length(0 | 1)``.
- ``next_positions[s]``: position id of the next token in segment ``s`` (``[1]`` for 1-D RoPE,
  ``[3, 1]`` for M-RoPE), None before the first chunk.
- ``prompt_length``: logical length of the complete prompt once ``end_prompt`` marked it (None
  before); with the authors' decode positions every segment then continues from segment 0's next
  position (``next_position_of``). ``next_positions`` keep each segment's own (compact) count.
- ``frozen_length``: logical length through the chunk that was reduced; ``crop`` cannot go below it.
- ``failed``: set when a forward raised midway (some layers may hold the chunk); the engine
  refuses such a cache.

``fork()`` gives an independent cache for one question at the cost of a few Python objects:
``DynamicLayer.update`` concatenates into new tensors, so the prefix tensors are never written.

Hybrid decoders (Qwen3.5): a Gated DeltaNet layer holds transformers' ``LinearAttentionLayer``
(a causal-conv state ``[1, D, K]`` and a recurrent state ``[1, H, dk, dv]``, plus a token count),
which its forward updates **in place**. ``fork()`` therefore copies those layers (the snapshot of
the prefix boundary; a few MB), while the attention layers stay shared as above. Such a layer has
no entries: its physical length is the count of tokens it absorbed; ``crop`` cannot roll it back
(refused) and ``drop_entries`` leaves it alone.
"""

from __future__ import annotations

import copy

import torch
from transformers.cache_utils import DynamicCache, LinearAttentionCacheLayerMixin

#: generated tokens: ``authors`` (N + i in every layer) or ``compact`` (each segment from its length)
DECODE_POSITIONS = ("authors", "compact")


class SegmentedCache(DynamicCache):
    """``DynamicCache`` in segments split at decoder layers ``splits`` (default ``[split_layer]``)."""

    def __init__(self, config, split_layer: int) -> None:
        super().__init__(config=config)
        num_layers = config.get_text_config(decoder=True).num_hidden_layers
        if not 0 <= split_layer < num_layers:
            raise ValueError(f"split_layer {split_layer} outside [0, {num_layers})")
        if len(self.layers) != num_layers:
            raise ValueError(f"cache built {len(self.layers)} layers for a {num_layers}-layer decoder")
        self.splits: list[int] = [split_layer]
        self.logical_length = 0
        self.frozen_length = 0
        self.next_positions: list[torch.Tensor | None] = [None, None]
        self.prompt_length: int | None = None
        self.decode_positions = "authors"
        self.failed = False
        self.entry_view: tuple[int, torch.Tensor] | None = None

    @property
    def split_layer(self) -> int:
        """The first split layer (the one-stage engine's k)."""
        return self.splits[0]

    @property
    def num_segments(self) -> int:
        return len(self.splits) + 1

    def set_splits(self, splits: list[int]) -> None:
        """The split layers of a reducing prefill (strictly increasing, in ``[0, L)``); empty cache only."""
        if self.logical_length:
            raise ValueError("set_splits needs an empty cache")
        if not splits or any(b <= a for a, b in zip(splits, splits[1:], strict=False)):
            raise ValueError(f"splits must be non-empty and strictly increasing, got {splits}")
        if splits[0] < 0 or splits[-1] >= len(self.layers):
            raise ValueError(f"splits {splits} outside [0, {len(self.layers)})")
        self.splits = list(splits)
        self.next_positions = [None] * (len(splits) + 1)

    def segment_of_layer(self, layer: int) -> int:
        """Index of the segment that holds decoder layer ``layer``."""
        return sum(1 for s in self.splits if s <= layer)

    def update(self, key_states, value_states, layer_idx: int, *args, **kwargs):
        """Appends as ``DynamicCache`` does; under an entry view (``set_entry_view``), layers from its
        layer return only the viewed entries (the full cache is kept)."""
        keys, values = super().update(key_states, value_states, layer_idx, *args, **kwargs)
        view = self.entry_view
        if view is not None and layer_idx >= view[0]:
            index = view[1].to(keys.device)
            keys, values = keys.index_select(-2, index), values.index_select(-2, index)
        return keys, values

    def set_entry_view(self, from_layer: int, index: torch.Tensor) -> None:
        """Until ``clear_entry_view``, layers ``>= from_layer`` attend over cache entries ``index`` only
        (1-D, ascending; it must cover the entry the current chunk appends). Used by decode-time KV
        pruning for one step; nothing is deleted and positions are unchanged."""
        self.entry_view = (from_layer, index)

    def clear_entry_view(self) -> None:
        self.entry_view = None

    def drop_entries(self, from_layer: int, positions: torch.Tensor) -> None:
        """Deletes the cached entries at ``positions`` (indices into the layer's cache) in layers
        ``>= from_layer`` (``>`` the last split layer, so segment lengths and masks are kept).

        The logical length and next positions are unchanged (cached keys carry their RoPE), so the
        next token keeps its position. Meant for single-token steps afterwards (the segment-1 mask of
        a longer chunk is sized by its split layer). Not undoable: use on a ``fork()``.
        """
        if from_layer <= self.splits[-1]:
            raise ValueError(
                f"drop_entries needs from_layer > the last split layer ({self.splits[-1]}), got {from_layer}"
            )
        for layer in self.layers[from_layer:]:
            if is_recurrent(layer):
                continue
            n = layer.keys.shape[-2]
            keep = torch.ones(n, dtype=torch.bool, device=layer.keys.device)
            keep[positions.to(layer.keys.device)] = False
            layer.keys, layer.values = layer.keys[..., keep, :], layer.values[..., keep, :]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        """The logical length (tokens of the caller's sequence), whatever ``layer_idx``."""
        return self.logical_length

    def segment_length(self, segment: int) -> int:
        """Physical cached length of segment ``segment`` (0: layers below the first split; 1: from the
        first split to the next; ``-1``: the last segment)."""
        segment = segment % self.num_segments
        if segment == 0:
            return self.logical_length if self.splits[0] == 0 else int(self.layers[0].get_seq_length())
        return int(self.layers[self.splits[segment - 1]].get_seq_length())

    def advance(self, q: int, nexts: list[torch.Tensor], *, reduced: bool) -> None:
        """Records a processed chunk of ``q`` logical tokens and each segment's next position
        (called by the engine after a forward)."""
        if len(nexts) != self.num_segments:
            raise ValueError(f"{len(nexts)} next positions for {self.num_segments} segments")
        self.logical_length += q
        self.next_positions = list(nexts)
        if reduced:
            self.frozen_length = self.logical_length

    @property
    def prompt_ended(self) -> bool:
        return self.prompt_length is not None

    def end_prompt(self, decode_positions: str) -> None:
        """Marks the prompt complete (idempotent). ``"authors"``: every later token continues from
        segment 0's next position in every segment (generated token ``i`` at ``N + i``, as
        ``generate`` with the full-length attention mask); ``"compact"``: each segment from its own
        length."""
        if decode_positions not in DECODE_POSITIONS:
            raise ValueError(f"decode_positions {decode_positions!r} not in {list(DECODE_POSITIONS)}")
        if self.prompt_length is None:
            self.prompt_length = self.logical_length
            self.decode_positions = decode_positions

    def next_position_of(self, segment: int) -> torch.Tensor | None:
        """Position id of the next token in ``segment`` under the decode rule (see ``end_prompt``)."""
        if self.prompt_length is not None and self.decode_positions == "authors":
            return self.next_positions[0]
        return self.next_positions[segment]

    def fork(self) -> SegmentedCache:
        """An independent copy sharing the (never mutated) prefix keys and values; the states of
        linear-attention layers, which their forward mutates in place, are copied."""
        new = copy.copy(self)
        new.layers = [
            copy.deepcopy(layer) if is_recurrent(layer) else copy.copy(layer) for layer in self.layers
        ]
        new.next_positions = list(self.next_positions)
        new.splits = list(self.splits)
        new.entry_view = None
        return new

    def crop(self, tokens_to_remove: int) -> None:
        """Removes the last ``-tokens_to_remove`` tokens from every layer (a negative count, as in transformers).

        Only tokens appended after the reduced chunk can be removed: they were appended to both
        segments alike.
        """
        if tokens_to_remove > 0:
            raise ValueError("crop takes a negative number of tokens to remove")
        n = -tokens_to_remove
        if n > self.logical_length - self.frozen_length:
            raise ValueError(
                f"cannot crop {n} tokens: only {self.logical_length - self.frozen_length} follow the reduced prefix"
            )
        if n == 0:
            return
        if any(is_recurrent(layer) for layer in self.layers):
            raise ValueError(
                "cannot crop a cache with linear-attention (Gated DeltaNet) layers: their recurrent state "
                "has absorbed the tokens; continue from a fork() of the prefix instead"
            )
        super().crop(tokens_to_remove)
        self.logical_length -= n
        if self.prompt_length is not None and self.logical_length < self.prompt_length:
            self.prompt_length = None
        self.next_positions = [None if p is None else p - n for p in self.next_positions]


def is_recurrent(layer) -> bool:
    """Whether a cache layer is a linear-attention state (conv + recurrent) rather than keys/values."""
    return isinstance(layer, LinearAttentionCacheLayerMixin)
