"""The lmms-eval model classes in-process: KV reuse, method=none vs stock generate, failures, stats."""

from __future__ import annotations

import json

import pytest
import torch
from lmms_eval.api.instance import GenerationResult, Instance

from lmms_sttm.data.synthetic import ClipSpec, ensure_clip
from lmms_sttm.engine import session
from lmms_sttm.models.llava_onevision_sttm import LlavaOnevisionSttm
from lmms_sttm.models.llava_video_sttm import LlavaVideoSttm
from lmms_sttm.models.qwen2_vl_sttm import Qwen2VLSttm, Qwen25VLSttm

CLASSES = {
    "llava_video": LlavaVideoSttm,
    "llava_onevision": LlavaOnevisionSttm,
    "qwen2_vl": Qwen2VLSttm,
    "qwen2_5_vl": Qwen25VLSttm,
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    a = ensure_clip(ClipSpec(num_frames=24, height=112, width=176, fps=4, seed=1, needle_at=5), d / "a.mp4")
    b = ensure_clip(ClipSpec(num_frames=16, height=96, width=96, fps=4, seed=2, cut_at=8), d / "b.mp4")
    bad = d / "corrupt.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    return {0: str(a), 1: str(a), 2: str(b), 3: str(bad), 4: str(b)}


def _requests(paths: dict[int, str], task: str = "probe_sttm") -> list[Instance]:
    questions = {
        0: "What happens first?",
        1: "Is there a red frame at all in this video?",
        2: "Scene?",
        3: "x",
        4: "Cut?",
    }
    reqs = []
    for i in paths:
        args = (
            questions[i],
            {"max_new_tokens": 4, "until": ["\n\n"]},
            lambda d: [d["path"]],
            i,
            task,
            "test",
        )
        reqs.append(Instance("generate_until", args, i, {"task": task, "doc_id": i, "repeats": 1}))
    return reqs


def _run(model, paths, task="probe_sttm"):
    model.task_dict = {task: {"test": {i: {"path": p} for i, p in paths.items()}}}
    out = model.generate_until(_requests(paths, task))
    return [o.text if isinstance(o, GenerationResult) else o for o in out]


@pytest.mark.parametrize("arch", sorted(CLASSES))
def test_kv_reuse_gives_identical_answers_and_counts_failures(arch, tiny_checkpoints, clips, tmp_path):
    ckpt = tiny_checkpoints(arch)
    runs = {}
    for reuse in (True, False):
        m = CLASSES[arch](
            pretrained=ckpt, tau_s=0.9, tau_t=0.8, kv_reuse=reuse, stats_dir=str(tmp_path / str(reuse))
        )
        runs[reuse] = (_run(m, clips), m.stats.records)
    (ans_reuse, stats_reuse), (ans_fresh, stats_fresh) = runs[True], runs[False]
    assert ans_reuse == ans_fresh
    assert ans_reuse[3] == ""  # the corrupt clip
    ok = [r for r in stats_reuse if r["error"] is None]
    failed = [r for r in stats_reuse if r["error"] is not None]
    assert [r["doc_id"] for r in failed] == [3] and "cannot" in failed[0]["error"]
    assert sorted(r["doc_id"] for r in ok) == [0, 1, 2, 4]
    assert {r["doc_id"]: r["prefix_reused"] for r in ok} == {0: False, 1: True, 2: False, 4: True}
    assert not any(r.get("prefix_reused") for r in stats_fresh)
    for r in ok:
        assert 0 < r["visual_tokens_kept"] <= r["visual_tokens"]
        assert r["retained_pct"] == pytest.approx(
            100 * r["visual_tokens_kept"] / r["visual_tokens"], abs=1e-3
        )
    kept = {r["doc_id"]: r["visual_tokens_kept"] for r in ok}
    assert kept == {r["doc_id"]: r["visual_tokens_kept"] for r in stats_fresh if r["error"] is None}
    lines = (tmp_path / "True").glob("*_rank0.jsonl")
    assert len([json.loads(x) for f in lines for x in f.read_text().splitlines()]) == 5


@pytest.mark.parametrize("arch", ["llava_video", "qwen2_vl"])
def test_method_none_matches_stock_generate(arch, tiny_checkpoints, clips):
    m = CLASSES[arch](pretrained=tiny_checkpoints(arch), method="none")
    video, time_text, _ = m.encode(clips[0], "probe_sttm")
    prompt = m.prompt("Describe the video.", time_text)
    inputs, ids = m.prefix_inputs(prompt.prefix, video)
    question = m._ids(prompt.question)
    prefix = session.prefill(m.engine, inputs, None, None)
    ours = session.answer(m.engine, prefix, question, max_new_tokens=6, eos_token_id=m.eos_ids)

    full = dict(inputs, input_ids=torch.cat([ids, question[None]], dim=1))
    full.pop("position_ids", None)  # stock: the model's own ids (the released ones on this short clip)
    full["attention_mask"] = torch.ones_like(full["input_ids"])
    if "mm_token_type_ids" in full:
        full["mm_token_type_ids"] = torch.cat(
            [inputs["mm_token_type_ids"], torch.zeros_like(question[None])], 1
        )
    with torch.no_grad():
        logits = m.model(**full).logits[:, -1]
        stock = m.model.generate(**full, max_new_tokens=6, do_sample=False, eos_token_id=m.eos_ids)
    torch.testing.assert_close(ours.first_logits, logits, atol=1e-5, rtol=1e-5)
    new = stock[0, full["input_ids"].shape[1] :]
    assert ours.tokens.tolist() == new.tolist()[: len(ours.tokens)]


def test_llava_newline_layouts_and_time_instruction(tiny_checkpoints, clips):
    ckpt = tiny_checkpoints("llava_video")
    counts = {}
    for newline in ("no_token", "one_token", "grid"):
        m = LlavaVideoSttm(pretrained=ckpt, method="none", newline=newline)
        video, time_text, facts = m.encode(clips[0], "probe_sttm")
        counts[newline] = video.num_placeholders
    f = facts["frames"]
    assert counts == {"no_token": f * 49, "one_token": f * 49 + 1, "grid": f * 7 * 8}
    assert m.use_time_instruction  # the tiny LLaVA-Video config sets add_time_instruction, like the real one
    assert time_text.startswith("The video lasts for 6.00 seconds, and 7 frames are uniformly sampled")
    off = LlavaVideoSttm(pretrained=ckpt, method="none", time_instruction=False)
    assert off.encode(clips[0], "probe_sttm")[1] is None
    with pytest.raises(ValueError, match="newline=no_token"):
        LlavaVideoSttm(pretrained=ckpt, tau_s=0.9, tau_t=0.8, newline="grid")


def test_budget_picks_paper_thresholds_and_bad_configs_fail(tiny_checkpoints):
    m = LlavaVideoSttm(pretrained=tiny_checkpoints("llava_video"), budget=30)
    plan = m.method_for("videomme_sttm")
    assert (plan.params["tau_s"], plan.params["tau_t"]) == (0.80, 0.50)
    assert (plan.prefill.tau_s, plan.prefill.tau_t) == (0.80, 0.50)
    with pytest.raises(ValueError, match="no 30% thresholds"):
        m.method_for("synthetic_needle_sttm")
    with pytest.raises(ValueError, match="merge_layer=9"):
        LlavaVideoSttm(pretrained=tiny_checkpoints("llava_video"), budget=30, merge_layer=9)
    with pytest.raises(ValueError, match="no thresholds for qwen2_5_vl_7b"):
        Qwen25VLSttm(pretrained=tiny_checkpoints("qwen2_5_vl"), budget=50).method_for("videomme_sttm")


def test_sampling_is_seeded_per_question_and_independent_of_prefix_reuse(tiny_checkpoints, clips):
    ckpt = tiny_checkpoints("llava_video")
    paths = {0: clips[0], 1: clips[1], 2: clips[2]}
    sample = {"max_new_tokens": 6, "do_sample": True, "temperature": 1.5, "top_p": 0.95, "until": []}
    greedy = {"max_new_tokens": 6, "until": []}

    def run(reuse: bool, gen_kwargs: dict) -> list[str]:
        m = LlavaVideoSttm(pretrained=ckpt, tau_s=0.9, tau_t=0.8, kv_reuse=reuse)
        m.task_dict = {"probe_sttm": {"test": {i: {"path": p} for i, p in paths.items()}}}
        reqs = [
            Instance(
                "generate_until",
                ("Q?", gen_kwargs, lambda d: [d["path"]], i, "probe_sttm", "test"),
                i,
                {"task": "probe_sttm", "doc_id": i, "repeats": 1},
            )
            for i in paths
        ]
        return [o.text for o in m.generate_until(reqs)]

    sampled = run(True, sample)
    assert sampled == run(False, sample)
    assert sampled != run(True, greedy)  # temperature 1.5 on a random model leaves the argmax path
