"""DyCoke stage 2 (decode-time KV pruning): under sdpa, the scores equal layer L-1's eager attention
weights (last row, mean over heads, pruned range's columns); a pruned decode step equals the same
step on a cache whose pruned entries were deleted by hand in layers >= L (same positions); the kept
count and range follow the setting (the authors' range ``[start, start + N)`` with ``N`` the
pre-stage-1 count drops text tokens after the video; ``span="video"`` never does); the similarity
rule and the session's per-step statistics."""

from __future__ import annotations

import pytest
import torch

from lmms_sttm.engine import answer, apply_reduction, prefill
from lmms_sttm.engine.kv_pruning import KvPruner, KvPruning
from lmms_sttm.merging.dycoke import DycokeStage1Reducer
from tests.engine.engine_helpers import FAMILIES, make_inputs, text_tokens

K, L = 2, 3  # reduction layer (stage 1) and KV pruning layer of the 4-layer tiny models


def _prefix(tiny, engines, family, attn):
    model = tiny(family, attn)
    engines.append(engine := apply_reduction(model, K))
    video = make_inputs(family, suffix_len=5)
    prefix = prefill(engine, video.inputs, DycokeStage1Reducer(prune=0.5), video.grid)
    return model, engine, prefix


def _step(model, cache, token, **kw):
    with torch.no_grad():
        return model(input_ids=token, past_key_values=cache, use_cache=True, **kw)


@pytest.mark.parametrize("span", ["video", "authors"])
@pytest.mark.parametrize("family", FAMILIES)
def test_pruned_step_equals_by_hand_with_eager_scores(tiny, engines, family, span):
    model, engine, prefix = _prefix(tiny, engines, family, "sdpa")
    assert model.config._attn_implementation == "sdpa"
    start, stop = prefix.video_span
    assert stop - start == prefix.visual_tokens_kept < prefix.visual_tokens
    token = prefix.last_logits.argmax(-1, keepdim=True)
    total = prefix.reduced_length + 1  # the cache with the decode step's own entry
    if span == "video":
        end, keep = stop, int((stop - start) * (1 - 0.6))
    else:  # the authors' range: N = pre-stage-1 count from the video start, clipped to the cache
        end, keep = min(start + prefix.visual_tokens, total), int(prefix.visual_tokens * (1 - 0.6))
        assert end == total  # the range runs over the suffix text and the current token

    # reference scores: eager attention weights of layer L-1 on the same (unpruned) decode step
    eager, _, eager_prefix = _prefix(tiny, engines, family, "eager")
    out = _step(eager, eager_prefix.cache.fork(), token, output_attentions=True)
    reference = out.attentions[L - 1][0, :, -1, start:end].mean(0)

    config = KvPruning(layer=L, prune=0.6, span=span)
    cache = prefix.cache.fork()
    pruner = KvPruner(engine, config, prefix.video_span, prefix.visual_tokens)
    try:
        pruned = _step(model, cache, token).logits[:, -1]
    finally:
        pruner.remove()
    torch.testing.assert_close(pruner.scores, reference.float(), atol=1e-6, rtol=1e-5)

    assert pruner.kept_per_step == [keep] and keep > 0
    top = torch.topk(reference, keep).indices + start
    dropped = torch.tensor(sorted(set(range(start, end)) - set(top.tolist())))
    if span == "authors":
        assert bool((dropped >= stop).any())  # a text token after the video is dropped (the quirk)
    else:
        assert bool((dropped < stop).all())
    expected_index = torch.tensor(sorted(set(range(total)) - set(dropped.tolist())))
    assert torch.equal(pruner.keep_index, expected_index)
    # nothing deleted, the logical length (next position) advanced by one, view cleared
    assert cache.logical_length == prefix.length + 1 and cache.entry_view is None
    assert all(layer.keys.shape[-2] == total for layer in cache.layers[K:])

    # by hand: delete the dropped entries in layers >= L, run the plain step (same positions); the
    # authors' range may also drop the current token's own entry, which cannot be deleted before
    # the step: then the eager run below (an independent attention path) is the check
    if int(dropped[-1]) < total - 1:
        by_hand = prefix.cache.fork()
        by_hand.drop_entries(L, dropped)
        assert by_hand.layers[L].keys.shape[-2] == total - 1 - dropped.numel()
        expected = _step(model, by_hand, token).logits[:, -1]
        torch.testing.assert_close(pruned, expected, atol=1e-5, rtol=0)
    else:
        assert span == "authors"
    unpruned = _step(model, prefix.cache.fork(), token).logits[:, -1]
    assert not torch.allclose(pruned, unpruned, atol=1e-4)
    # eager attention: the pruner narrows the additive mask with the gathered entries
    eager_engine = engines[-1]
    eager_pruner = KvPruner(eager_engine, config, eager_prefix.video_span, eager_prefix.visual_tokens)
    try:
        eager_pruned = _step(eager, eager_prefix.cache.fork(), token).logits[:, -1]
    finally:
        eager_pruner.remove()
    assert torch.equal(eager_pruner.keep_index, expected_index)
    torch.testing.assert_close(eager_pruned, pruned, atol=1e-5, rtol=0)


def test_similarity_rule_and_session_statistics(tiny, engines):
    model, engine, prefix = _prefix(tiny, engines, "llava_onevision", "sdpa")
    n = prefix.visual_tokens_kept
    keep = int(n * (1 - 0.8))
    question = text_tokens(4, 3)
    plain = answer(engine, prefix, question, max_new_tokens=5)
    runs = {}
    for name, similarity in (("always", None), ("above_one", 1.5), ("never_again", -1.5), ("gated", 0.9)):
        config = KvPruning(layer=L, prune=0.8, similarity=similarity, span="video")
        runs[name] = answer(engine, prefix, question, max_new_tokens=5, kv_pruning=config)
        res = runs[name]
        # the prompt (question) forward is never pruned
        torch.testing.assert_close(res.first_logits, plain.first_logits, atol=0, rtol=0)
        assert len(res.stats.kv_video_kept) == res.stats.new_tokens - 1
    steps = len(runs["always"].stats.kv_video_kept)
    assert steps >= 1
    assert runs["always"].stats.kv_video_kept == (keep,) * steps
    assert runs["above_one"].tokens.tolist() == runs["always"].tokens.tolist()
    kept = runs["never_again"].stats.kv_video_kept
    assert kept[0] == keep and all(k == n for k in kept[1:])
    assert set(runs["gated"].stats.kv_video_kept) <= {keep, n}
    assert runs["gated"].stats.kv_video_kept[0] == keep
    # the authors' rule: every step keeps int(0.2 N) of its (growing) range, N before stage 1
    authors = answer(engine, prefix, question, max_new_tokens=5, kv_pruning=KvPruning(layer=L, prune=0.8))
    assert authors.stats.kv_video_kept == (int(prefix.visual_tokens * (1 - 0.8)),) * (
        authors.stats.new_tokens - 1
    )
    assert plain.stats.kv_video_kept == ()
    # hooks removed after each answer: a plain answer is unchanged
    again = answer(engine, prefix, question, max_new_tokens=5)
    assert again.tokens.tolist() == plain.tokens.tolist()


def test_pruning_layer_must_follow_the_reduction_layer(tiny, engines):
    model, engine, prefix = _prefix(tiny, engines, "qwen2_vl", "sdpa")
    with pytest.raises(ValueError, match="must not precede"):
        KvPruner(engine, KvPruning(layer=K), prefix.video_span, prefix.visual_tokens)
    with pytest.raises(ValueError, match="outside"):
        KvPruner(engine, KvPruning(layer=4), prefix.video_span, prefix.visual_tokens)
    with pytest.raises(ValueError, match="original token count"):
        KvPruner(engine, KvPruning(layer=L), prefix.video_span)
    with pytest.raises(ValueError, match="prune ratio"):
        KvPruning(prune=1.0)
    with pytest.raises(ValueError, match="needs span='video'"):
        KvPruning(similarity=0.9)
    with pytest.raises(ValueError, match="not one of"):
        KvPruning(span="all")
    unreduced = prefill(engine, make_inputs("qwen2_vl").inputs)
    with pytest.raises(ValueError, match="reduced prefix"):
        answer(engine, unreduced, text_tokens(3, 1), max_new_tokens=2, kv_pruning=KvPruning(layer=L))
