"""Small pieces of the engine: positions, span location, plan validation, the segmented cache."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import transformers

from lmms_sttm.api import from_keep_mask
from lmms_sttm.engine import SegmentedCache, apply_reduction, check_reduction, identity_reducer, prefill
from lmms_sttm.engine.positions import continuation_positions, next_position
from lmms_sttm.engine.span import VideoRows, locate_video
from lmms_sttm.engine.splice import in_sequence_order, splice, spliced_positions
from tests.engine.engine_helpers import TEXT, pair_merge_reducer


def _after(rule, previous, start, plan, blocks=None):
    """Positions after ``plan`` on the video run ``[start, start + n)`` (optionally split in blocks)."""
    video = VideoRows.run(start, plan.token_map.numel())
    if blocks is not None:
        video = VideoRows(video.rows, torch.tensor(blocks))
    plan = in_sequence_order(plan, video.blocks)
    return spliced_positions(rule, previous, video, plan, splice(previous.shape[-1], video, plan))


def test_spliced_positions_one_run():
    grid = (2, 2, 2)
    plan = pair_merge_reducer(torch.randn(8, 4), grid)  # row 0 merges frames, row 1 merges columns
    assert plan.rep_index.tolist() == [0, 1, 2, 6]
    full = torch.arange(12)[None] + 100  # 2 text, 8 video, 2 text
    assert _after("renumber", full, 2, plan).tolist() == [list(range(8))]
    # original ids on 1-D RoPE (FastV / FrameFusion on LLaVA): the representatives' own ids
    assert _after("original", full, 2, plan).tolist() == [[100, 101, 102, 103, 104, 108, 110, 111]]
    moved = replace(plan, position_index=torch.tensor([1, 0, 2, 7]))
    assert _after("original", full, 2, moved).tolist() == [[100, 101, 103, 102, 104, 109, 110, 111]]
    mrope = torch.stack([full, full * 2, full * 3])  # [3, 1, 12]
    kept = _after("original", mrope, 2, plan)
    assert kept.shape == (3, 1, 8)
    assert kept[1, 0].tolist() == [200, 202, 204, 206, 208, 216, 220, 222]
    assert next_position(kept).tolist() == [[112], [223], [334]]
    assert continuation_positions(torch.tensor([[7], [7], [7]]), 2).tolist() == [[[7, 8]], [[7, 8]], [[7, 8]]]


def test_splice_blocks_by_hand():
    """Two frame blocks with text between them: [t0 t1 | v0 v1 | t4 | v5 v6 | t7]; the plan keeps
    tokens 0 and 3 (of the 4 video tokens), token 3's row listed first (a non-raster plan order)."""
    hidden = torch.arange(8.0)[:, None].expand(8, 2).clone()
    video = VideoRows(torch.tensor([2, 3, 5, 6]), torch.tensor([0, 0, 1, 1]))
    keep = torch.tensor([True, False, False, True])
    plan = from_keep_mask(hidden[video.rows], keep, (2, 1, 2))
    plan = plan.reorder(torch.tensor([1, 0]))  # rows listed as (token 3, token 0)
    ordered = in_sequence_order(plan, video.blocks)
    assert ordered.rep_index.tolist() == [0, 3]
    spliced = splice(8, video, ordered)
    seq = spliced.gather(hidden[spliced.text_rows], ordered.features, dim=0)[:, 0]
    assert seq.tolist() == [0, 1, 2, 4, 6, 7]  # block 0 keeps row 2, block 1 keeps row 6, text stays
    assert spliced.video.rows.tolist() == [2, 4] and spliced.video.blocks.tolist() == [0, 1]
    mrope = torch.arange(8)[None, None].expand(3, 1, 8) * torch.tensor([1, 10, 100])[:, None, None]
    assert spliced_positions("original", mrope, video, ordered, spliced)[2, 0].tolist() == [
        0,
        100,
        200,
        400,
        600,
        700,
    ]
    # an emptied block keeps its text
    empty = from_keep_mask(hidden[video.rows], torch.tensor([True, True, False, False]), (2, 1, 2))
    gone = splice(8, video, in_sequence_order(empty, video.blocks))
    assert gone.gather(hidden[gone.text_rows], empty.features, dim=0)[:, 0].tolist() == [0, 1, 2, 3, 4, 7]


def test_locate_video():
    ids = torch.tensor([[1, 2, 5, 5, 5, 5, 5, 3]])
    assert locate_video(ids, 5, (1, 2, 2), extra_allowed=(0, 1)).rows.tolist() == [2, 3, 4, 5]
    assert locate_video(ids, 5, (1, 1, 5)).start == 2
    assert locate_video(torch.tensor([[1, 2, 3]]), 5, (1, 2, 2)) is None
    with pytest.raises(ValueError, match="do not fit"):
        locate_video(ids, 5, (1, 2, 2))
    with pytest.raises(ValueError, match="contiguous"):
        locate_video(torch.tensor([[5, 5, 1, 5]]), 5, (1, 1, 3))
    with pytest.raises(ValueError, match="span_start"):
        locate_video(None, None, (1, 1, 3))
    assert locate_video(None, None, (1, 1, 3), span_start=4).rows.tolist() == [4, 5, 6]
    blocks = torch.tensor([[9, 5, 5, 8, 9, 5, 5, 8, 9, 5, 5, 8, 1]])
    found = locate_video(blocks, 5, (3, 1, 2), blocks=True)
    assert found.rows.tolist() == [1, 2, 5, 6, 9, 10] and found.blocks.tolist() == [0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="blocks"):
        locate_video(blocks, 5, (2, 1, 3), blocks=True)  # 3 blocks of 2 tokens are not whole 1x3 frames


def test_check_reduction():
    hidden = torch.randn(12, 8)
    plan = identity_reducer(hidden, (3, 2, 2))
    check_reduction(plan, hidden, (3, 2, 2))
    bad = [
        (replace(plan, grid=(2, 3, 2)), "grid"),
        (replace(plan, features=plan.features[:, :4]), "do not fit"),
        (replace(plan, rep_index=plan.rep_index[:-1]), "rep_index shape"),
        (replace(plan, rep_index=plan.rep_index + 1), "out of range"),
        (replace(plan, rep_index=torch.zeros_like(plan.rep_index)), "distinct"),
        (replace(plan, position_index=plan.rep_index[:-1]), "position_index"),
    ]
    for wrong, message in bad:
        with pytest.raises(ValueError, match=message):
            check_reduction(wrong, hidden, (3, 2, 2))


def test_segmented_cache_fork_and_crop():
    config = transformers.Qwen2Config(**TEXT)
    cache = SegmentedCache(config, split_layer=2)
    with pytest.raises(ValueError, match="split_layer"):
        SegmentedCache(config, split_layer=4)
    kv = lambda n: torch.randn(1, 2, n, 16)  # noqa: E731
    for index in range(4):
        cache.update(kv(10 if index < 2 else 6), kv(10 if index < 2 else 6), index)
    cache.advance(10, [torch.tensor([10]), torch.tensor([6])], reduced=True)
    fork = cache.fork()
    for index in range(4):
        fork.update(kv(3), kv(3), index)
    fork.advance(3, [torch.tensor([13]), torch.tensor([9])], reduced=False)
    assert (cache.get_seq_length(), cache.segment_length(0), cache.segment_length(1)) == (10, 10, 6)
    assert (fork.get_seq_length(), fork.segment_length(0), fork.segment_length(1)) == (13, 13, 9)
    fork.crop(-2)
    assert (fork.get_seq_length(), fork.segment_length(1)) == (11, 7)
    assert [int(p) for p in fork.next_positions] == [11, 7]
    with pytest.raises(ValueError, match="cannot crop"):
        fork.crop(-2)
    authors, compact = fork.fork(), fork.fork()
    authors.end_prompt("authors")
    compact.end_prompt("compact")
    assert [int(authors.next_position_of(s)) for s in (0, 1)] == [11, 11]
    assert [int(compact.next_position_of(s)) for s in (0, 1)] == [11, 7]
    assert [int(fork.next_position_of(s)) for s in (0, 1)] == [11, 7]  # forks are independent
    authors.crop(-1)  # back into the prompt: no longer decoding
    assert not authors.prompt_ended and int(authors.next_position_of(1)) == 6
    with pytest.raises(ValueError, match="decode_positions"):
        fork.end_prompt("full")


def test_segmented_cache_splits():
    config = transformers.Qwen2Config(**TEXT)
    cache = SegmentedCache(config, split_layer=1)
    cache.set_splits([0, 1, 3])
    assert (cache.num_segments, cache.split_layer) == (4, 0)
    assert [cache.segment_of_layer(i) for i in range(4)] == [1, 2, 2, 3]
    kv = lambda n: torch.randn(1, 2, n, 16)  # noqa: E731
    for index, n in enumerate([9, 7, 7, 5]):
        cache.update(kv(n), kv(n), index)
    cache.advance(
        12, [torch.tensor([12]), torch.tensor([9]), torch.tensor([7]), torch.tensor([5])], reduced=True
    )
    assert [cache.segment_length(s) for s in range(4)] == [12, 9, 7, 5]
    assert cache.segment_length(-1) == 5
    with pytest.raises(ValueError, match="empty cache"):
        cache.set_splits([1])
    with pytest.raises(ValueError, match="strictly increasing"):
        SegmentedCache(config, split_layer=1).set_splits([2, 2])


def test_text_only_decoder_with_explicit_span(engines):
    """The plain Qwen2 family (used by the benchmark) reduces a span given by position."""
    torch.manual_seed(0)
    model = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**TEXT)).eval()
    ids = torch.randint(10, 400, (1, 30))
    engines.append(engine := apply_reduction(model, 1))
    with torch.no_grad():
        reference = model(ids).logits
        with engine.video((2, 3, 4), identity_reducer, span_start=3):
            torch.testing.assert_close(model(ids).logits, reference, atol=1e-5, rtol=0)
    prefix = prefill(engine, {"input_ids": ids}, pair_merge_reducer, (2, 3, 4), span_start=3)
    assert (prefix.visual_tokens, prefix.length, prefix.reduced_length) == (
        24,
        30,
        30 - 24 + prefix.visual_tokens_kept,
    )
    with pytest.raises(ValueError, match="no vision inputs"), torch.no_grad():
        engine.family.grid_from_inputs(model, {"input_ids": ids})
