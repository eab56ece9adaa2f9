"""``qwen3_5_sttm`` in-process on the tiny Qwen3.5 checkpoints (dense, MoE): its written-out prompt
is the stock processor's, token for token; ``method=none`` answers as the stock model generates;
KV reuse answers as fresh prefills; the answer follows ``</think>`` with the thinking budget on
top of the task's; ``features=`` is refused."""

from __future__ import annotations

import dataclasses
import os
import re

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lmms_sttm.data.synthetic import ClipSpec, ensure_clip, render_frames  # noqa: E402
from lmms_sttm.engine import session  # noqa: E402
from lmms_sttm.models.qwen3_5_sttm import Qwen35Sttm  # noqa: E402
from lmms_sttm.models.video_blocks import encode_qwen3_5, qwen3_5_frame_size  # noqa: E402
from tests.models.test_model_layer import _run  # noqa: E402

ARCHS = ("qwen3_5", "qwen3_5_moe")
CLIP_FPS = 8.0
FRAME_INDICES = [1, 5, 10, 14, 19, 23, 28, 31]
QUESTION = "How many red frames are there?\nA. 1\nB. 2\nAnswer with the option's letter."


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("q35clips")
    a = ensure_clip(ClipSpec(num_frames=24, height=112, width=176, fps=4, seed=1, needle_at=5), d / "a.mp4")
    b = ensure_clip(ClipSpec(num_frames=16, height=96, width=96, fps=4, seed=2, cut_at=8), d / "b.mp4")
    bad = d / "corrupt.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    return {0: str(a), 1: str(a), 2: str(b), 3: str(bad), 4: str(b)}


def model(arch, tiny_checkpoints, **kwargs) -> Qwen35Sttm:
    return Qwen35Sttm(pretrained=tiny_checkpoints(arch), warmup=False, **{"method": "none", **kwargs})


@pytest.mark.parametrize("thinking", [True, False])
@pytest.mark.parametrize("arch", ARCHS)
def test_prompt_equals_the_processor(arch, thinking, tiny_checkpoints):
    m = model(arch, tiny_checkpoints, enable_thinking=thinking)
    frames = render_frames(ClipSpec(num_frames=32, height=112, width=176, fps=CLIP_FPS, cut_at=16))
    frames = frames[FRAME_INDICES]
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": QUESTION}]},
    ]
    text = m.processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=False, enable_thinking=thinking
    )
    metadata = {"fps": CLIP_FPS, "total_num_frames": 32, "frames_indices": FRAME_INDICES}
    # 112 x 176 is 77 tokens of 16 px, inside lmms-eval's budget: the protocol keeps the size, and
    # lmms-eval calls the processor with do_resize=False
    assert qwen3_5_frame_size(112, 176, len(FRAME_INDICES), 16) == (112, 176)
    want = m.processor(
        text=text,
        videos=[frames],
        video_metadata=[metadata],
        do_resize=False,
        do_sample_frames=False,
        return_tensors="pt",
    )
    video = encode_qwen3_5(m.model, m.processor, frames, FRAME_INDICES, CLIP_FPS)
    prompt = m.prompt(QUESTION, None)
    inputs, prefix = m.prefix_inputs(prompt.prefix, video)
    got = torch.cat([prefix[0].cpu(), m._ids(prompt.question)])
    assert got.tolist() == want["input_ids"][0].tolist()
    assert "<2.6 seconds>" in m.tokenizer.decode(got)  # (19 + 23) / 2 / 8 s, the processor's .1f
    assert m.tokenizer.decode(got).endswith("<think>\n" if thinking else "</think>\n\n")
    assert torch.equal(video.extra["video_grid_thw"].cpu(), want["video_grid_thw"])
    with torch.no_grad():  # the same features the stock model computes from the same pixels
        stock = m.model.model.get_video_features(want["pixel_values_videos"], want["video_grid_thw"])
    assert torch.allclose(video.features, torch.cat(stock.pooler_output), atol=1e-6, rtol=0)
    assert video.deepstack == [] and "deepstack" not in str(inputs["mm_encoder_outputs"]["video"].keys())


@pytest.mark.parametrize("arch", ARCHS)
def test_method_none_matches_stock_generate(arch, tiny_checkpoints, clips):
    m = model(arch, tiny_checkpoints, enable_thinking=False)
    video, time_text, _ = m.encode(clips[0], "probe_sttm")
    prompt = m.prompt("Describe the video.", time_text)
    inputs, ids = m.prefix_inputs(prompt.prefix, video)
    question = m._ids(prompt.question)
    full = dict(inputs, input_ids=torch.cat([ids, question[None]], dim=1))
    full["attention_mask"] = torch.ones_like(full["input_ids"])
    full["mm_token_type_ids"] = torch.cat([inputs["mm_token_type_ids"], torch.zeros_like(question[None])], 1)
    ours = session.generate(m.engine, full, None, None, max_new_tokens=6, eos_token_id=m.eos_ids)
    with torch.no_grad():
        logits = m.model(**full).logits[:, -1]
        stock = m.model.generate(**full, max_new_tokens=6, do_sample=False, eos_token_id=m.eos_ids)
    torch.testing.assert_close(ours.first_logits, logits, atol=1e-5, rtol=0)
    assert ours.tokens.tolist() == stock[0, full["input_ids"].shape[1] :].tolist()[: len(ours.tokens)]


@pytest.mark.parametrize("arch", ARCHS)
def test_kv_reuse_gives_identical_answers_and_counts_failures(arch, tiny_checkpoints, clips, tmp_path):
    runs = {}
    for reuse in (True, False):
        m = model(
            arch,
            tiny_checkpoints,
            method="sttm",
            budget_mode="exact",
            retention=0.3,
            enable_thinking=False,
            kv_reuse=reuse,
            stats_dir=str(tmp_path / str(reuse)),
        )
        runs[reuse] = (_run(m, clips), m.stats.records)
    (answers, stats), (fresh, _) = runs[True], runs[False]
    assert answers == fresh and answers[3] == ""
    ok = [r for r in stats if r["error"] is None]
    assert {r["doc_id"]: r["prefix_reused"] for r in ok} == {0: False, 1: True, 2: False, 4: True}
    # 24 frames at 4 fps: 12 frames at 2 fps, 6 blocks of 7 x 11; 16 frames of 96 px: 8 frames, and
    # 96 x 96 is 36 tokens of 16 px, under the 64-token minimum: upscaled to 128 x 128, 4 blocks of 8 x 8
    for r in ok:
        assert r["visual_tokens"] == {0: 462, 1: 462, 2: 256, 4: 256}[r["doc_id"]]
        assert abs(r["retained_pct"] - 30) <= 1 and r["enable_thinking"] is False
        assert "thinking_tokens" not in r


def test_the_answer_follows_the_thinking_block(tiny_checkpoints, clips, tmp_path, monkeypatch):
    """The generated tokens are replaced by reasoning + ``</think>`` + an answer + a stop string
    + more: the answer text is the part after ``</think>``, cut at the stop string; the thinking
    budget comes on top of the task's ``max_new_tokens`` (4 in these requests)."""
    m = model("qwen3_5", tiny_checkpoints, method="sttm", budget_mode="exact", retention=0.3)
    assert m.thinking is True and m.prompt("Q?", None).question.endswith("<think>\n")
    tok = m.tokenizer
    reasoning = tok("the needle\n\nis red", add_special_tokens=False)["input_ids"]
    answer = tok("B. blue\n\nmore", add_special_tokens=False)["input_ids"]
    end = tok.convert_tokens_to_ids("</think>")
    budgets, real = [], session.answer

    def scripted(*args, **kwargs):
        budgets.append(kwargs["max_new_tokens"])
        out = real(*args, **kwargs)
        tokens = reasoning + [end] + answer if len(budgets) == 1 else reasoning
        return dataclasses.replace(out, tokens=torch.tensor(tokens))

    monkeypatch.setattr(session, "answer", scripted)
    texts = _run(m, {0: clips[0], 1: clips[1]})
    assert budgets == [4 + 1024, 4 + 1024]
    # the stop string "\n\n" (the requests' until) inside the reasoning does not cut the answer
    assert texts == ["B. blue", ""]
    first, second = m.stats.records
    assert (first["thinking_tokens"], first["thinking_closed"]) == (len(reasoning) + 1, True)
    assert (second["thinking_tokens"], second["thinking_closed"]) == (len(reasoning), False)
    assert first["enable_thinking"] is True and first["answer"] == "B. blue"
    small = model("qwen3_5", tiny_checkpoints, max_thinking_tokens=7)
    budgets.clear()
    _run(small, {0: clips[0]})
    assert budgets == [4 + 7]


def test_features_are_refused_with_the_reason(tiny_checkpoints, tmp_path):
    with pytest.raises(ValueError, match=r"features= \(two-stage runs\) is not supported for qwen3_5_sttm"):
        model("qwen3_5", tiny_checkpoints, features=str(tmp_path))


@pytest.mark.parametrize(("method", "layer"), [("flashvid", 6), ("holitom", 5)])
def test_an_inner_stage_with_no_full_attention_layer_to_read_is_refused(
    method, layer, tiny_checkpoints, clips
):
    """8 layers, full attention at 3 and 7: the inner stage at its default layer (20 / 18 of 28,
    scaled) reads layer 7, the last; the run stops with the reason before any video is decoded
    (a configuration error, on every rank alike; e2e runs pass an earlier layer)."""
    m = model("qwen3_5", tiny_checkpoints, method=method, budget=30, enable_thinking=False)
    expected = f"a stage at layer {layer} reads attention; the nearest full-attention layer is 7, with no layer after"
    with pytest.raises(ValueError, match=re.escape(expected)):
        m.method_for("synthetic_needle_sttm")
    with pytest.raises(ValueError, match=re.escape(expected)):
        _run(m, {0: clips[0]})
    assert m.failures == []  # refused before any sample
