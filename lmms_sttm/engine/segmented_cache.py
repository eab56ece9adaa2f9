"""A KV cache whose layers below ``split_layer`` hold the full sequence and layers from it the reduced one.

Layer objects are transformers' own ``DynamicLayer`` s (one per decoder layer); only the
bookkeeping differs from ``DynamicCache``:

- ``logical_length``: tokens of the caller's sequence seen so far (= ``input_ids`` length). It is
  what ``get_seq_length()`` reports, so ``generate`` slices new inputs correctly even when every
  layer is reduced (k = 0). Physical lengths: ``segment_length(0 | 1)``.
- ``next_positions[s]``: position id of the next token in segment ``s`` (``[1]`` for 1-D RoPE,
  ``[3, 1]`` for M-RoPE), None before the first chunk.
- ``frozen_length``: logical length through the chunk that was reduced; ``crop`` cannot go below it.
- ``failed``: set when a forward raised midway (some layers may hold the chunk); the engine
  refuses such a cache.

``fork()`` gives an independent cache for one question at the cost of a few Python objects:
``DynamicLayer.update`` concatenates into new tensors, so the prefix tensors are never written.
"""

from __future__ import annotations

import copy

import torch
from transformers.cache_utils import DynamicCache


class SegmentedCache(DynamicCache):
    """``DynamicCache`` with two segments split at decoder layer ``split_layer`` (0 <= k < L)."""

    def __init__(self, config, split_layer: int) -> None:
        super().__init__(config=config)
        num_layers = config.get_text_config(decoder=True).num_hidden_layers
        if not 0 <= split_layer < num_layers:
            raise ValueError(f"split_layer {split_layer} outside [0, {num_layers})")
        if len(self.layers) != num_layers:
            raise ValueError(f"cache built {len(self.layers)} layers for a {num_layers}-layer decoder")
        self.split_layer = split_layer
        self.logical_length = 0
        self.frozen_length = 0
        self.next_positions: list[torch.Tensor | None] = [None, None]
        self.failed = False
        self.entry_view: tuple[int, torch.Tensor] | None = None

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
        ``>= from_layer`` (``> split_layer``, so segment lengths and masks of segment 1 are kept).

        The logical length and next positions are unchanged (cached keys carry their RoPE), so the
        next token keeps its position. Meant for single-token steps afterwards (the segment-1 mask of
        a longer chunk is sized by layer ``split_layer``). Not undoable: use on a ``fork()``.
        """
        if from_layer <= self.split_layer:
            raise ValueError(
                f"drop_entries needs from_layer > split_layer ({self.split_layer}), got {from_layer}"
            )
        for layer in self.layers[from_layer:]:
            n = layer.keys.shape[-2]
            keep = torch.ones(n, dtype=torch.bool, device=layer.keys.device)
            keep[positions.to(layer.keys.device)] = False
            layer.keys, layer.values = layer.keys[..., keep, :], layer.values[..., keep, :]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        """The logical length (tokens of the caller's sequence), whatever ``layer_idx``."""
        return self.logical_length

    def segment_length(self, segment: int) -> int:
        """Physical cached length of segment 0 (layers < k) or 1 (layers >= k)."""
        if segment == 0:
            return self.logical_length if self.split_layer == 0 else self.layers[0].get_seq_length()
        return self.layers[self.split_layer].get_seq_length()

    def advance(self, q: int, next0: torch.Tensor, next1: torch.Tensor, *, reduced: bool) -> None:
        """Records a processed chunk of ``q`` logical tokens (called by the engine after a forward)."""
        self.logical_length += q
        self.next_positions = [next0, next1]
        if reduced:
            self.frozen_length = self.logical_length

    def fork(self) -> SegmentedCache:
        """An independent copy sharing the (never mutated) prefix tensors."""
        new = copy.copy(self)
        new.layers = [copy.copy(layer) for layer in self.layers]
        new.next_positions = list(self.next_positions)
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
        super().crop(tokens_to_remove)
        self.logical_length -= n
        self.next_positions = [None if p is None else p - n for p in self.next_positions]
