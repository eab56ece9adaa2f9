"""DyCoke stage 2 over several decode steps of one question, on every family and both ranges: each
step keeps the entries chosen by *its own* layer L-1 attention (eager weights of an unpruned run
fed the same tokens: pruning in layers >= L never changes layers < L) and its logits equal the
same step on a copy of the cache with the other entries deleted by hand in layers >= L (when the
authors' range drops the step's own entry, as it does on the Qwen families here, layers >= L
leave it out by hand too).

Each case is checked to choose differently from the previous step's scores on some step, so a
pruner that kept the previous step's choice fails here."""

from __future__ import annotations

import pytest
import torch

from lmms_sttm.engine import apply_reduction, prefill
from lmms_sttm.engine.kv_pruning import KvPruner, KvPruning
from lmms_sttm.merging.dycoke import DycokeStage1Reducer
from tests.engine.engine_helpers import FAMILIES, make_inputs

K, L = 2, 3  # reduction layer (stage 1) and KV pruning layer of the 4-layer tiny models
STEPS = 5
PRUNE = 0.6


def _prefix(tiny, engines, family, attn):
    model = tiny(family, attn)
    engines.append(engine := apply_reduction(model, K))
    video = make_inputs(family, suffix_len=5)
    return model, engine, prefill(engine, video.inputs, DycokeStage1Reducer(prune=0.5), video.grid)


def _step(model, cache, token, **kw):
    with torch.no_grad():
        return model(input_ids=token, past_key_values=cache, use_cache=True, **kw)


def _range(span, start, stop, total, original):
    """``(end, keep)`` of the pruned range ``[start, end)`` (the module docstring's rule)."""
    if span == "video":
        return stop, int((stop - start) * (1 - PRUNE))
    end = min(start + original, total)
    return end, min(int(original * (1 - PRUNE)), end - start)


def _kept(scores, start, end, total, keep):
    top = set((torch.topk(scores, keep).indices + start).tolist())
    return [i for i in range(total) if not start <= i < end or i in top]


def _by_hand_cache(before, dropped: torch.Tensor, total: int):
    """A copy of the cache before the step with ``dropped`` deleted in layers >= L. The step's own
    entry (index ``total - 1``) does not exist yet: when it is dropped, layers >= L leave out the
    entry they have just appended (it is still stored, as the pruner stores it)."""
    manual = before.fork()
    others = dropped[dropped < total - 1]
    if others.numel():
        manual.drop_entries(L, others)
    if int(dropped[-1]) == total - 1:
        append = manual.update

        def update(key_states, value_states, layer_idx, *args, **kwargs):
            keys, values = append(key_states, value_states, layer_idx, *args, **kwargs)
            if layer_idx >= L:
                return keys[..., :-1, :], values[..., :-1, :]
            return keys, values

        manual.update = update
    return manual


@pytest.mark.parametrize("span", ["video", "authors"])
@pytest.mark.parametrize("family", FAMILIES)
def test_every_step_prunes_by_its_own_scores(tiny, engines, family, span):
    model, engine, prefix = _prefix(tiny, engines, family, "sdpa")
    eager, _, eager_prefix = _prefix(tiny, engines, family, "eager")
    start, stop = prefix.video_span
    config = KvPruning(layer=L, prune=PRUNE, span=span)

    cache, pruned = prefix.cache.fork(), []  # (token, cache before the step, logits, keep_index)
    token = prefix.last_logits.argmax(-1, keepdim=True)
    pruner = KvPruner(engine, config, prefix.video_span, prefix.visual_tokens)
    try:
        for _ in range(STEPS):
            before = cache.fork()
            logits = _step(model, cache, token).logits[:, -1]
            pruned.append((token, before, logits, pruner.keep_index.clone()))
            token = logits.argmax(-1, keepdim=True)
    finally:
        pruner.remove()

    reference = eager_prefix.cache.fork()  # unpruned eager run over the same tokens
    previous_choice_differs, own_entries = False, 0
    last = None
    for step, (token, before, logits, keep_index) in enumerate(pruned):
        total = prefix.reduced_length + 1 + step
        end, keep = _range(span, start, stop, total, prefix.visual_tokens)
        attn = _step(eager, reference, token, output_attentions=True).attentions[L - 1]
        scores = attn[0, :, -1, start:end].float().mean(0)
        expected = _kept(scores, start, end, total, keep)
        assert keep_index.tolist() == expected, f"step {step}"
        if last is not None:
            previous_choice_differs |= _kept(last[: end - start], start, end, total, keep) != expected
        last = scores
        dropped = torch.tensor(sorted(set(range(total)) - set(expected)))
        own = int(dropped[-1]) == total - 1  # the authors' range dropped the step's own entry
        assert span == "authors" or not own
        own_entries += own
        expect = _step(model, _by_hand_cache(before, dropped, total), token).logits[:, -1]
        torch.testing.assert_close(logits, expect, atol=1e-5, rtol=0)
    assert previous_choice_differs
    if span == "authors" and family != "llava_onevision":
        assert own_entries > 0  # the case where the step's own entry is dropped is exercised
