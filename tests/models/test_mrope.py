"""M-RoPE ids as the released Qwen2-VL / Qwen2.5-VL define them (``models/mrope.py``), and the engine
keeping them: full, reduced and prefix-reused runs equal decoder runs written out by hand.

The expected ids come from ``released_ids``, a token-by-token transcription of the released formula
(text after a video resumes at the largest video id + 1), independent of the module and of
transformers' ``get_rope_index`` (which resumes at ``start + max(h', w')``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lmms_sttm.engine import apply_reduction, session
from lmms_sttm.engine.reducer import identity_reducer
from lmms_sttm.models.mrope import mrope_position_ids, with_position_ids
from tests.engine.engine_helpers import (
    VEND,
    VIDEO,
    VSTART,
    build_model,
    logits_by_hand,
    pair_merge_reducer,
    text_tokens,
)

MERGE = 2


def released_ids(tokens: list[int], grid: tuple[int, int, int], time_scale=None) -> torch.Tensor:
    """``[3, 1, L]``: text ids count up; a video token (f, y, x) gets (s + T(f), s + y, s + x) with s the
    position where the video starts; the text after it resumes at the largest id so far + 1."""
    t, h, w = grid
    rows: list[tuple[int, int, int]] = []
    pos, i = 0, 0
    while i < len(tokens):
        if tokens[i] != VIDEO:
            rows.append((pos, pos, pos))
            pos, i = pos + 1, i + 1
            continue
        start = pos
        for f in range(t):
            if time_scale is None:
                tf = f
            else:  # float32, left to right, then truncation (``.long()``)
                tf = int(np.float32(np.float32(f) * np.float32(time_scale[0])) * np.float32(time_scale[1]))
            for y in range(h):
                for x in range(w):
                    rows.append((start + tf, start + y, start + x))
        pos = max(max(r) for r in rows) + 1
        i += t * h * w
    return torch.tensor(rows).T[:, None]


def _prompt(
    family: str, grid_thw: tuple[int, int, int], seed: int = 0, sys_len: int = 5, suffix_len: int = 3
):
    """Processor-like inputs ``[sys, <vstart>, video, <vend>, suffix]`` for a tiny Qwen model."""
    gt, gh, gw = grid_thw
    n = gt * gh * gw // MERGE**2
    ids = torch.cat(
        [
            text_tokens(sys_len, seed + 1),
            torch.tensor([VSTART]),
            torch.full((n,), VIDEO),
            torch.tensor([VEND]),
            text_tokens(suffix_len, seed + 2),
        ]
    )[None]
    gen = torch.Generator().manual_seed(seed + 100)
    pixels = torch.randn(gt * gh * gw, 3 * 2 * 8 * 8, generator=gen)
    inputs = {
        "input_ids": ids,
        "mm_token_type_ids": (ids == VIDEO).long() * 2,
        "pixel_values_videos": pixels,
        "video_grid_thw": torch.tensor([grid_thw]),
    }
    if family == "qwen2_5_vl":
        inputs["second_per_grid_ts"] = torch.tensor([1.5])
    return inputs, (gt, gh // MERGE, gw // MERGE), sys_len + 1


def _scale(family):
    return (1.5, 2) if family == "qwen2_5_vl" else None


@pytest.mark.parametrize(
    ("grid", "scale"),
    [
        ((9, 2, 3), None),
        ((9, 2, 3), (15.0, 2)),
        ((3, 4, 5), None),
        ((4, 1, 1), (0.7, 2)),
        ((6, 2, 2), (1 / 3, 2)),
    ],
)
def test_ids_follow_the_released_formula(grid, scale):
    t, h, w = grid
    tokens = [11, 12, VSTART, *([VIDEO] * (t * h * w)), VEND, 13, 14, 15]
    ours = mrope_position_ids(torch.tensor(tokens)[None], VIDEO, grid, scale)
    assert ours.shape == (3, 1, len(tokens))
    assert torch.equal(ours, released_ids(tokens, grid, scale))


def test_text_after_a_long_video_resumes_after_its_last_frame():
    grid = (9, 2, 3)  # t' = 9 > max(h', w') = 3
    tokens = [11, VSTART, *([VIDEO] * 54), VEND, 13]
    ours = mrope_position_ids(torch.tensor(tokens), VIDEO, grid)[:, 0]
    assert ours[:, -2].tolist() == [2 + 8 + 1] * 3  # video starts at 2, last frame id 2 + 8
    assert ours[:, -1].tolist() == [12] * 3
    scaled = mrope_position_ids(torch.tensor(tokens), VIDEO, grid, (15.0, 2))[:, 0]
    assert scaled[0, -3] == 2 + 8 * 30 and scaled[:, -2].tolist() == [2 + 240 + 1] * 3


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl"])
def test_transformers_differs_only_when_time_outruns_space(family):
    model = build_model(family)
    short, grid_s, _ = _prompt(family, (2, 6, 10))  # LLM grid (2, 3, 5): T(t'-1) < max(h', w')
    long, grid_l, _ = _prompt(family, (10, 4, 4))  # LLM grid (10, 2, 2)
    for inputs, grid, same in ((short, grid_s, True), (long, grid_l, False)):
        theirs, _ = model.model.get_rope_index(
            inputs["input_ids"],
            inputs["mm_token_type_ids"],
            video_grid_thw=inputs["video_grid_thw"],
            second_per_grid_ts=inputs.get("second_per_grid_ts"),
        )
        ours = with_position_ids(model, inputs)["position_ids"]
        expected = released_ids(inputs["input_ids"][0].tolist(), grid, _scale(family))
        assert torch.equal(ours, expected)
        assert torch.equal(theirs, ours) is same
        n = grid[0] * grid[1] * grid[2]
        span = (inputs["input_ids"][0] == VIDEO).nonzero()
        start, stop = int(span[0]), int(span[-1]) + 1
        assert torch.equal(theirs[..., start:stop], ours[..., start:stop]) and stop - start == n


def _by_hand(model, inputs, positions, k, reducer, grid, span_start):
    embeds = model.model.get_input_embeddings()(inputs["input_ids"])
    with torch.no_grad():
        feats = model.model.get_video_features(
            inputs["pixel_values_videos"], inputs["video_grid_thw"], return_dict=True
        ).pooler_output
    feats = (
        torch.cat(list(feats), 0) if isinstance(feats, (tuple, list)) else feats.reshape(-1, embeds.shape[-1])
    )
    embeds = embeds.masked_scatter((inputs["input_ids"] == VIDEO)[..., None], feats.to(embeds.dtype))
    return logits_by_hand(model, embeds, positions, k, reducer, grid, span_start, "survive")


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl"])
@pytest.mark.parametrize("reducer", [identity_reducer, pair_merge_reducer], ids=["full", "reduced"])
def test_engine_keeps_the_released_ids_with_and_without_reduction_and_with_prefix_reuse(family, reducer):
    model = build_model(family)
    inputs, grid, span_start = _prompt(family, (10, 4, 4))  # LLM grid (10, 2, 2)
    question = text_tokens(4, seed=9)
    full = dict(inputs)
    full["input_ids"] = torch.cat([inputs["input_ids"], question[None]], 1)
    full["mm_token_type_ids"] = torch.cat([inputs["mm_token_type_ids"], torch.zeros_like(question[None])], 1)
    tokens = full["input_ids"][0].tolist()
    expected = released_ids(tokens, grid, _scale(family))
    engine = apply_reduction(model, layer=2)
    try:
        # one prefill of prompt + question
        seen = []

        def pick(logits):
            seen.append(logits)
            return logits.argmax(-1, keepdim=True)

        fresh = session.generate(
            engine,
            with_position_ids(model, full),
            reducer,
            grid,
            max_new_tokens=2,
            eos_token_id=None,
            pick=pick,
        )
        # prefix reuse: [sys, video, suffix] once, the question on a fork of its cache
        prefix = session.prefill(engine, with_position_ids(model, inputs), reducer, grid)
        reused = session.answer(engine, prefix, question, max_new_tokens=2, eos_token_id=None)
    finally:
        engine.remove()
    hand = _by_hand(model, full, expected, 2, reducer, grid, span_start)[:, -1]
    torch.testing.assert_close(fresh.first_logits, hand, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(reused.first_logits, hand, atol=1e-5, rtol=1e-5)
    assert fresh.tokens.tolist() == reused.tokens.tolist()
    # decoding: the first generated token continues at the last prompt id + 1 (= released rope_deltas)
    longer = dict(full, input_ids=torch.cat([full["input_ids"], fresh.tokens[:1][None]], 1))
    ext = torch.cat([expected, expected[..., -1:] + 1], -1)
    second = _by_hand(model, longer, ext, 2, reducer, grid, span_start)[:, -1]
    second[..., engine.video_token_id] = float("-inf")  # decoding never picks the placeholder
    torch.testing.assert_close(seen[1], second, atol=1e-5, rtol=1e-5)
    # transformers' ids give other logits on this video (its question overlaps the late frames)
    hand_tf = _by_hand(
        model,
        full,
        model.model.get_rope_index(
            full["input_ids"],
            full["mm_token_type_ids"],
            video_grid_thw=full["video_grid_thw"],
            second_per_grid_ts=full.get("second_per_grid_ts"),
        )[0],
        2,
        reducer,
        grid,
        span_start,
    )[:, -1]
    assert (hand_tf - hand).abs().max() > 1e-3
