"""``SegmentedCache`` bookkeeping on hand-filled caches (no model): construction, splits, entry
views, deleting entries, cropping and advancing, with their exact error messages."""

from __future__ import annotations

import re

import pytest
import torch
import transformers as tf

from lmms_sttm.engine.segmented_cache import SegmentedCache


def _exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


def _config(layers: int = 4):
    return tf.Qwen2Config(
        num_hidden_layers=layers, hidden_size=8, num_attention_heads=2, num_key_value_heads=1, vocab_size=16
    )


def _filled(split: int, lengths: list[int]) -> tuple[SegmentedCache, list[torch.Tensor]]:
    """A cache whose layer ``i`` holds ``lengths[i]`` entries; keys = values = entry numbers."""
    cache = SegmentedCache(_config(len(lengths)), split)
    stored = []
    for i, n in enumerate(lengths):
        kv = torch.arange(n, dtype=torch.float32).view(1, 1, n, 1).expand(1, 1, n, 4).clone()
        cache.update(kv, kv.clone(), i)
        stored.append(kv)
    return cache, stored


def test_construction():
    cache = SegmentedCache(_config(), 2)
    assert cache.splits == [2] and cache.split_layer == 2 and cache.num_segments == 2
    assert (cache.logical_length, cache.frozen_length, cache.prompt_length) == (0, 0, None)
    assert cache.next_positions == [None, None] and cache.decode_positions == "authors"
    assert cache.failed is False and cache.entry_view is None and len(cache.layers) == 4
    for bad in (-1, 4):
        with pytest.raises(ValueError, match=_exactly(f"split_layer {bad} outside [0, 4)")):
            SegmentedCache(_config(), bad)
    assert SegmentedCache(_config(), 0).splits == [0] and SegmentedCache(_config(), 3).splits == [3]


def test_set_splits():
    cache = SegmentedCache(_config(), 1)
    cache.set_splits([0, 3])
    assert cache.splits == [0, 3] and cache.num_segments == 3 and cache.next_positions == [None] * 3
    assert [cache.segment_of_layer(i) for i in range(4)] == [1, 1, 1, 2]
    for bad in ([], [2, 1], [1, 1]):
        with pytest.raises(
            ValueError, match=_exactly(f"splits must be non-empty and strictly increasing, got {bad}")
        ):
            cache.set_splits(bad)
    for bad in ([-1, 2], [1, 4], [4]):
        with pytest.raises(ValueError, match=_exactly(f"splits {bad} outside [0, 4)")):
            cache.set_splits(bad)
    cache.set_splits([3])
    assert cache.splits == [3] and cache.next_positions == [None, None]
    full, _ = _filled(1, [3, 3, 3, 3])
    full.logical_length = 3
    with pytest.raises(ValueError, match=_exactly("set_splits needs an empty cache")):
        full.set_splits([1, 2])


def test_entry_view_selects_entries_from_its_layer_on():
    cache, stored = _filled(1, [5, 5, 5, 5])
    index = torch.tensor([0, 2, 5])  # 5: the entry the next update appends
    cache.set_entry_view(2, index)
    new = torch.full((1, 1, 1, 4), 9.0)
    for layer in range(4):
        keys, values = cache.update(new, new.clone(), layer)
        full = torch.cat([stored[layer], new], dim=-2)
        expected = full.index_select(-2, index) if layer >= 2 else full
        assert torch.equal(keys, expected) and torch.equal(values, expected)
        assert cache.layers[layer].keys.shape[-2] == 6  # the full cache is kept
    cache.clear_entry_view()
    assert cache.entry_view is None


def test_drop_entries_deletes_from_its_layer_on():
    cache, stored = _filled(1, [5, 4, 5, 5])
    with pytest.raises(
        ValueError, match=_exactly("drop_entries needs from_layer > the last split layer (1), got 1")
    ):
        cache.drop_entries(1, torch.tensor([0]))
    cache.drop_entries(2, torch.tensor([1, 3]))
    for layer in (2, 3):
        assert torch.equal(cache.layers[layer].keys, stored[layer][..., [0, 2, 4], :])
        assert torch.equal(cache.layers[layer].values, stored[layer][..., [0, 2, 4], :])
    assert torch.equal(cache.layers[0].keys, stored[0]) and torch.equal(cache.layers[1].keys, stored[1])


def test_lengths_advance_and_crop():
    cache, _ = _filled(1, [7, 5, 5, 5])
    assert cache.segment_length(0) == 7 and cache.segment_length(1) == 5 and cache.segment_length(-1) == 5
    cache.advance(7, [torch.tensor([7]), torch.tensor([5])], reduced=True)
    assert (cache.logical_length, cache.frozen_length) == (7, 7) and cache.get_seq_length(3) == 7
    with pytest.raises(ValueError, match=_exactly("1 next positions for 2 segments")):
        cache.advance(1, [torch.tensor([8])], reduced=False)
    for layer in range(4):  # two more tokens in every layer
        kv = torch.zeros(1, 1, 2, 4)
        cache.update(kv, kv.clone(), layer)
    cache.advance(2, [torch.tensor([9]), torch.tensor([7])], reduced=False)
    assert (cache.logical_length, cache.frozen_length) == (9, 7)
    cache.end_prompt("authors")
    assert cache.prompt_length == 9 and cache.next_position_of(1).tolist() == [9]
    with pytest.raises(ValueError, match=_exactly("crop takes a negative number of tokens to remove")):
        cache.crop(1)
    cache.crop(0)
    assert cache.logical_length == 9
    with pytest.raises(ValueError, match=_exactly("cannot crop 3 tokens: only 2 follow the reduced prefix")):
        cache.crop(-3)
    cache.crop(-1)
    assert cache.logical_length == 8 and cache.prompt_length is None  # below the prompt: reopened
    assert [p.tolist() for p in cache.next_positions] == [[8], [6]]
    assert [layer.keys.shape[-2] for layer in cache.layers] == [8, 6, 6, 6]


def test_crop_back_to_the_prompt_keeps_it_ended():
    cache, _ = _filled(1, [7, 5, 5, 5])
    cache.advance(7, [torch.tensor([7]), torch.tensor([5])], reduced=True)
    cache.end_prompt("compact")
    for layer in range(4):
        kv = torch.zeros(1, 1, 1, 4)
        cache.update(kv, kv.clone(), layer)
    cache.advance(1, [torch.tensor([8]), None], reduced=False)
    cache.crop(-1)
    assert cache.logical_length == 7 and cache.prompt_length == 7  # 7 is not below the prompt
    assert cache.next_positions[1] is None and cache.next_positions[0].tolist() == [7]
    assert cache.next_position_of(1) is None  # compact: each segment's own
