"""``engine/kv_pruning.KvPruner`` piece by piece on one tiny model's reduced prefix: the refusals and
their messages, which forwards count as decode steps, the hooks reading ``hidden_states`` from the
keyword arguments, ``_decide`` on hand-chosen queries (a video span reaching the cache's end, the
clipped authors' range keeping all of it, the similarity gate at exactly its threshold and above
one), ``remove`` twice, and the view cleared when the forward raises."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lmms_sttm.engine import apply_reduction, prefill
from lmms_sttm.engine.kv_pruning import KvPruner, KvPruning, decode_token_attention
from lmms_sttm.engine.segmented_cache import SegmentedCache
from lmms_sttm.merging.dycoke import DycokeStage1Reducer
from tests.engine.engine_helpers import make_inputs

K, L = 2, 3  # reduction layer (stage 1) and KV pruning layer of the 4-layer tiny models
FAMILY = "qwen2_vl"


@pytest.fixture
def reduced(tiny, engines):
    model = tiny(FAMILY)
    engines.append(engine := apply_reduction(model, K))
    video = make_inputs(FAMILY, suffix_len=5)
    prefix = prefill(engine, video.inputs, DycokeStage1Reducer(prune=0.5), video.grid)
    return model, engine, prefix


def _query(engine, seed):
    attn = engine.text_model.layers[L - 1].self_attn
    heads = attn.q_proj.out_features // attn.head_dim
    return torch.randn(heads, attn.head_dim, generator=torch.Generator().manual_seed(seed))


def _keys(cache):
    return cache.layers[L - 1].keys


def test_decode_token_attention_against_a_per_head_loop(reduced):
    _, engine, prefix = reduced
    layer = engine.text_model.layers[L - 1]
    keys = _keys(prefix.cache)
    query = _query(engine, 0)
    heads, kv_heads = query.shape[0], keys.shape[1]
    start, stop = prefix.video_span
    rows = []
    for h in range(heads):
        k = keys[0, h // (heads // kv_heads)].float()  # grouped-query: consecutive heads share a KV head
        rows.append(torch.softmax(k @ query[h] * layer.self_attn.scaling, dim=0))
    expected = torch.stack(rows)[:, start:stop].mean(0)
    got = decode_token_attention(layer, query, keys, (start, stop))
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)


def test_refusals_name_the_values(reduced):
    _, engine, prefix = reduced
    span, n = prefix.video_span, prefix.visual_tokens
    with pytest.raises(ValueError, match=r"^KV pruning layer 4 outside \[1, 3\]$"):
        KvPruner(engine, KvPruning(layer=4), span, n)
    message = (
        r"^KV pruning scores layer L-1 = 1 must not precede the last split 2 \(its cache would hold "
        r"the video before the last stage, and the span of the pruned layers would not be one\)$"
    )
    with pytest.raises(ValueError, match=message):
        KvPruner(engine, KvPruning(layer=2), span, n)
    message = r"^KV pruning span='authors' needs the video's original token count$"
    with pytest.raises(ValueError, match=message):
        KvPruner(engine, KvPruning(layer=L), span)
    with pytest.raises(ValueError, match=message):
        KvPruner(engine, KvPruning(layer=L), span, 0)
    # an explicit last split replaces the engine's layer (2)
    with pytest.raises(
        ValueError, match=r"^KV pruning scores layer L-1 = 2 must not precede the last split 3 "
    ):
        KvPruner(engine, KvPruning(layer=L), span, n, last_split=3)
    KvPruner(engine, KvPruning(layer=2), span, n, last_split=1).remove()
    pruner = KvPruner(engine, KvPruning(layer=L, span="video"), span)  # the video span needs no N
    try:
        assert pruner.keep_index is None and pruner.scores is None and pruner.kept_per_step == []
    finally:
        pruner.remove()


def _segmented(model, length):
    cache = SegmentedCache(model.config.get_text_config(), K)
    cache.logical_length = length
    return cache


def test_which_forwards_are_decode_steps(tiny):
    model = tiny(FAMILY)
    one, five = torch.zeros(1, 1, 8), torch.zeros(1, 5, 8)
    assert KvPruner._decode_step(one, _segmented(model, 1))
    assert KvPruner._decode_step(one, _segmented(model, 7))
    assert not KvPruner._decode_step(one, _segmented(model, 0))  # nothing cached yet: the prompt
    assert not KvPruner._decode_step(five, _segmented(model, 7))  # a multi-token forward
    assert not KvPruner._decode_step(five, _segmented(model, 0))
    assert not KvPruner._decode_step(one, None)


def test_hooks_read_hidden_states_from_keyword_arguments(reduced):
    _, engine, prefix = reduced
    layers = engine.text_model.layers
    before = [len(layer._forward_pre_hooks) for layer in layers]
    pruner = KvPruner(engine, KvPruning(layer=L, span="video"), prefix.video_span)
    try:
        # hooks on layer L-1 (the query) and on layers >= L only
        added = [len(layer._forward_pre_hooks) - b for layer, b in zip(layers, before, strict=True)]
        assert added == [0] * (L - 1) + [1] * (len(layers) - L + 1)
        # a decode step on which layer L-1 did not run (none has run since the pruner was made)
        step = {"hidden_states": torch.zeros(1, 1, 8), "past_key_values": prefix.cache.fork()}
        with pytest.raises(RuntimeError, match=r"^KV pruning: layer L-1 did not run on this decode step$"):
            pruner._make_layer_hook(L)(layers[L], (), step)
        kwargs = {"hidden_states": torch.zeros(1, 5, 8)}  # no cache: not a decode step
        assert pruner._grab_query(layers[L - 1], (), kwargs) is None
        assert pruner._make_layer_hook(L)(layers[L], (), kwargs) is None
        # layer L-1 ran on that forward, which was not a decode step: still no query for this one
        with pytest.raises(RuntimeError, match=r"^KV pruning: layer L-1 did not run on this decode step$"):
            pruner._make_layer_hook(L)(layers[L], (), step)
        # a prompt forward on a segmented cache: layer L-1's hook clears a stale view and holds the
        # cache until remove() (or the text model's forward hook) lets it go
        held = prefix.cache.fork()
        held.set_entry_view(L, torch.arange(3))
        prompt = {"hidden_states": torch.zeros(1, 5, 8), "past_key_values": held}
        assert pruner._grab_query(layers[L - 1], (), prompt) is None
        assert held.entry_view is None and pruner._cache is held
        held.set_entry_view(L, torch.arange(3))
    finally:
        pruner.remove()
    assert held.entry_view is None and pruner._cache is None and pruner._handles == []
    pruner.remove()  # a second remove does nothing
    assert held.entry_view is None and pruner._handles == []


def _video_range_pruner(engine, prefix, stop, similarity=None):
    start, _ = prefix.video_span
    config = KvPruning(layer=L, prune=0.6, similarity=similarity, span="video")
    return KvPruner(engine, config, (start, stop))


def test_decide_on_a_span_reaching_the_cache_end_and_past_it(reduced):
    _, engine, prefix = reduced
    cache = prefix.cache.fork()
    total = _keys(cache).shape[-2]
    start = prefix.video_span[0]
    pruner = _video_range_pruner(engine, prefix, total)
    try:
        pruner._query = query = _query(engine, 1)
        pruner._decide(cache)
        keep = int((total - start) * 0.4)
        scores = decode_token_attention(engine.text_model.layers[L - 1], query, _keys(cache), (start, total))
        top = sorted((torch.topk(scores, keep).indices + start).tolist())
        assert pruner.keep_index.tolist() == list(range(start)) + top
        assert pruner.kept_per_step == [keep] and pruner._query is None
    finally:
        pruner.remove()
    pruner = _video_range_pruner(engine, prefix, total + 1)
    try:
        pruner._query = _query(engine, 1)
        message = rf"^video span \({start}, {total + 1}\) exceeds the cache \({total} entries\)$"
        with pytest.raises(ValueError, match=message):
            pruner._decide(cache)
    finally:
        pruner.remove()


def test_decide_keeps_the_whole_clipped_authors_range(reduced):
    _, engine, prefix = reduced
    cache = prefix.cache.fork()
    total = _keys(cache).shape[-2]
    pruner = KvPruner(engine, KvPruning(layer=L, prune=0.0), prefix.video_span, 1000)
    try:
        pruner._query = _query(engine, 2)
        pruner._decide(cache)
        assert pruner.kept_per_step == [total - prefix.video_span[0]]
        assert pruner.keep_index.tolist() == list(range(total))
    finally:
        pruner.remove()


def test_similarity_gate_at_its_threshold(reduced):
    _, engine, prefix = reduced
    cache = prefix.cache.fork()
    start, stop = prefix.video_span
    layer = engine.text_model.layers[L - 1]
    q1, q2 = _query(engine, 3), _query(engine, 4)
    s1 = decode_token_attention(layer, q1, _keys(cache), (start, stop))
    s2 = decode_token_attention(layer, q2, _keys(cache), (start, stop))
    cosine = float(F.cosine_similarity(s2, s1, dim=0))
    assert cosine < 1.0
    keep = int((stop - start) * 0.4)
    for threshold, second in ((cosine, stop - start), (1.5, keep)):
        pruner = _video_range_pruner(engine, prefix, stop, similarity=threshold)
        try:
            pruner._query = q1
            pruner._decide(cache)
            first_index = pruner.keep_index
            pruner._query = q2
            pruner._decide(cache)
            assert pruner.kept_per_step == [keep, second]
            torch.testing.assert_close(pruner.scores, s2)
            if second == keep:  # below the threshold: pruned by its own scores
                top = sorted((torch.topk(s2, keep).indices + start).tolist())
                expected = list(range(start)) + top + list(range(stop, _keys(cache).shape[-2]))
                assert pruner.keep_index.tolist() == expected
            else:  # cosine == threshold is not below it: not pruned
                assert first_index is not None and pruner.keep_index is None
        finally:
            pruner.remove()


def test_remove_twice_and_view_cleared_when_the_forward_raises(reduced):
    model, engine, prefix = reduced
    cache = prefix.cache.fork()
    pruner = KvPruner(engine, KvPruning(layer=L, prune=0.6, span="video"), prefix.video_span)
    last = engine.text_model.layers[-1]

    def fail(module, args, kwargs):
        assert cache.entry_view is not None  # the step was pruned: the view is set here
        raise RuntimeError("stop here")

    handle = last.register_forward_pre_hook(fail, with_kwargs=True)
    token = prefix.last_logits.argmax(-1, keepdim=True)
    try:
        with pytest.raises(RuntimeError, match="stop here"), torch.no_grad():
            model(input_ids=token, past_key_values=cache, use_cache=True)
        assert cache.entry_view is None  # the text model's forward hook ran although it raised
        assert pruner.kept_per_step == [int((prefix.video_span[1] - prefix.video_span[0]) * 0.4)]
    finally:
        handle.remove()
        pruner.remove()
    pruner.remove()  # a second remove does nothing
    assert pruner._handles == []
