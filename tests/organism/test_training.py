"""The organism's training command runs (a few steps) and writes a checkpoint the loader accepts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lmms_sttm.organism.__main__ import main
from lmms_sttm.organism.bench import held_out, records
from lmms_sttm.organism.clips import COLOURS, FAMILIES, render, sample_clip
from lmms_sttm.organism.train import valid_questions


def test_train_command_runs_a_few_steps_and_loads(tmp_path):
    out = tmp_path / "ckpt"
    assert main(["train", "--out", str(out), "--steps", "2", "--seed", "3", "--bank", "8"]) == 0
    facts = json.loads((out / "training.json").read_text())
    assert facts["steps"] == 2 and facts["seed"] == 3 and facts["bank"] == 8
    assert np.isfinite(facts["history"][-1]["loss"]) and facts["command"].endswith("--bank 8 --threads 1")
    from lmms_sttm.models.checkpoints import load_checkpoint

    model, processor, info = load_checkpoint(out)
    assert info.format == "llava_next" and info.add_time_instruction is False
    text = model.config.text_config
    assert (text.num_hidden_layers, text.hidden_size) == (8, 64)
    from safetensors.torch import load_file

    stored = load_file(str(out / "model.safetensors"))
    loaded = dict(model.named_parameters())
    assert torch.equal(
        stored["model.layers.0.mlp.up_proj.weight"],
        loaded["model.language_model.layers.0.mlp.up_proj.weight"],
    )


def test_clips_show_their_needles_and_questions_have_one_answer():
    for f, family in enumerate(FAMILIES):
        clip, q = sample_clip(np.random.default_rng([5, f]), family)
        frames = render(clip).astype(float)
        for frame, name in clip.needles:
            centre = frames[frame, :4, :4].reshape(-1, 3).max(0)  # the checker's bright cell
            assert np.abs(centre - COLOURS[name]).max() <= 1
        others = [i for i in range(clip.num_frames) if i not in dict(clip.needles)]
        assert all(frames[i].std() > 5 for i in others)  # backgrounds, not solid frames
        assert q.options[0] == q.answer and len(set(q.options)) == 4
        assert q.family in {v.family for v in valid_questions(clip, np.random.default_rng(0))}


def test_held_out_benchmark_is_vnbench_format_and_prefix_stable():
    small, large = records(held_out(2)), records(held_out(3))
    assert len(small) == 2 * 3 * 4 and all(r in large for r in small)
    for r in small:
        assert r["options"][0].startswith("A. ") and r["options"][0].endswith(".")
        assert r["question_id"] == f"{r['videoID']}_try{r['try']}" and r["answer"] in "ABCD"
    assert [r["answer"] for r in small[:4]] == ["A", "B", "C", "D"]


def test_training_rows_are_the_evaluation_prompt_and_targets_point_right(tmp_path):
    from lmms_sttm.models.prompts import llava_prompt
    from lmms_sttm.organism.model import new_model
    from lmms_sttm.organism.sequences import clip_row, video_labels
    from lmms_sttm.organism.train import clip_question
    from lmms_sttm.tasks.common.parse import parse_answer

    _, processor = new_model(tmp_path / "m", 0)
    tok = processor.tokenizer
    rng = np.random.default_rng(1)
    clip, main = sample_clip(rng, "ord_insert1", 6)
    text, letter, answer = clip_question(clip, main, rng)
    ids, targets, (query, key), reply_start = clip_row(tok, clip.num_frames, text, letter, answer)
    prompt = llava_prompt(text, "<video>").text.replace("<video>", "<video>" * (6 * 49))
    reply_at = len(tok(prompt, add_special_tokens=False)["input_ids"])
    assert tok.decode(ids[:reply_at]) == prompt
    reply = tok.decode(ids[reply_at : ids.index(tok.convert_tokens_to_ids("<|im_end|>"), reply_at)])
    assert reply == f" {answer}{letter}" and parse_answer(reply) == letter
    for p, t, is_letter in targets:  # every target in the row is the row's own next token...
        if p < reply_at - 1 or p + 1 >= len(ids):
            continue
        assert ids[p + 1] == t and is_letter == (tok.decode([t]) == letter and p + 1 > reply_at)
    prompt_targets = {tok.decode(ids[p]): tok.decode([t]) for p, t, _ in targets if p < reply_at - 1}
    for line in text.splitlines()[-5:-1]:  # ...and the prompt's: each option's word -> its letter
        code, word = line[0], line[3:-1]
        assert prompt_targets[f" {word}" if not word.isdigit() else word] == code
    assert prompt_targets["?"] == f" {answer}"  # the question's last token -> the answer word
    assert [tok.decode([t]) for _, t, is_letter in targets if is_letter] == [letter]
    # the matching head's pair: the reply's word (where the letter is predicted) -> the answer's option
    assert [p for p, _, is_letter in targets if is_letter] == [query] and ids[query] == ids[key]
    assert reply_start == reply_at
    assert key < query and tok.decode(ids[key - 3 : key + 1]).endswith(f"{letter}. {answer}")
    labels = video_labels(tok, clip).reshape(6, 49)
    for frame in range(6):
        names = {tok.decode([t]) for t in labels[frame].tolist()}
        want = {f" {n}" for f, n in clip.needles if f == frame} or {"<video>"}
        assert names == want


def test_thinned_batches_see_fewer_visual_tokens_with_targets_moved_along(tmp_path):
    from lmms_sttm.organism.model import new_model
    from lmms_sttm.organism.sequences import build_batch, clip_row, thinned, video_labels
    from lmms_sttm.organism.train import clip_question

    _, processor = new_model(tmp_path / "m", 0)
    tok = processor.tokenizer
    rng = np.random.default_rng(4)
    clips = [sample_clip(rng, family, 6) for family in FAMILIES]
    rows = [clip_row(tok, 6, *clip_question(c, q, rng)) for c, q in clips]
    labels = [video_labels(tok, c) for c, _ in clips]
    tower = torch.zeros(3, 6, 169, 8)
    full = build_batch(tok, tower, rows, labels)
    keep = thinned(rng, 3, 6 * 49, 0.3)
    assert keep.shape == (3, 88) and all(torch.equal(k, k.unique()) for k in keep)  # sorted, distinct
    thin = build_batch(tok, tower, rows, labels, keep)
    cut = 6 * 49 - 88
    assert thin.ids.shape[1] == full.ids.shape[1] - cut
    s = full.video_start
    assert torch.equal(thin.ids[:, s + 88 :], full.ids[:, s + 6 * 49 :])  # the text after the video
    assert torch.equal(thin.target_pos, full.target_pos - cut) and torch.equal(thin.match, full.match - cut)
    assert torch.equal(thin.target_ids, full.target_ids)
    assert torch.equal(full.positions, torch.arange(full.ids.shape[1]).expand(3, -1))
    for i, row in enumerate(rows):  # the reply keeps the unreduced prompt's numbering (authors' decoding)
        at = row.reply_start - cut
        assert torch.equal(thin.positions[i, :at], torch.arange(at))
        assert thin.positions[i, at] == row.reply_start and thin.positions[i, at + 1] == row.reply_start + 1
    assert torch.equal(thin.video_labels, full.video_labels.gather(1, keep))
    r, p = thin.target_rows, thin.target_pos
    answered = p + 1 < thin.ids.shape[1]
    reply = thin.ids[r[answered], p[answered] + 1] == thin.target_ids[answered]
    assert reply.sum() >= 3 * 3  # every row's reply tokens and <|im_end|> still follow their positions


def test_lookup_rows_put_the_reply_after_a_position_gap_in_about_half_of_the_rows(tmp_path):
    from lmms_sttm.organism.model import new_model
    from lmms_sttm.organism.train import LOOKUP_GAP, lookup_step

    model, processor = new_model(tmp_path / "m", 0)
    lm = model.model.language_model
    seen = {}
    handle = lm.register_forward_pre_hook(lambda m, a, kw: seen.update(kw), with_kwargs=True)
    try:
        loss, matched = lookup_step(model, processor.tokenizer, np.random.default_rng(2), 64)
    finally:
        handle.remove()
    assert torch.isfinite(loss) and torch.isfinite(matched)
    ids, positions = seen["input_ids"], seen["position_ids"]
    steps = positions[:, 1:] - positions[:, :-1]  # 1 everywhere but at the reply's first token
    gaps = (steps - 1).sum(1)
    assert torch.equal(positions[:, 0], torch.zeros(64, dtype=positions.dtype))
    assert ((steps == 1).sum(1) >= ids.shape[1] - 2).all()  # at most one jump per row
    assert 16 <= int((gaps > 0).sum()) <= 48 and int(gaps.max()) <= LOOKUP_GAP
    newline = processor.tokenizer.convert_tokens_to_ids("Ċ")
    for row in torch.nonzero(gaps > 0).flatten().tolist():  # the jump is right after "assistant\n"
        at = int(torch.nonzero(steps[row] > 1)[0])
        assert ids[row, at] == newline and at > ids.shape[1] // 2


def test_same_command_same_weights_bit_for_bit_and_the_machine_recorded(tmp_path):
    """Two trainings of one seed give identical phase fingerprints (clip bank included), history and
    weight files; training.json says what the numbers depend on (other seeds: the draws test)."""
    runs = {}
    for name, seed in (("a", 3), ("b", 3)):
        out = tmp_path / name
        assert main(["train", "--out", str(out), "--steps", "2", "--seed", str(seed), "--bank", "6"]) == 0
        runs[name] = json.loads((out / "training.json").read_text())
    a, b = runs["a"], runs["b"]
    assert a["fingerprints"] == b["fingerprints"] and a["history"] == b["history"]
    assert set(a["fingerprints"]) == {"init", "after_lookup", "bank", "final"}
    stored = (tmp_path / "a" / "model.safetensors").read_bytes()
    assert stored == (tmp_path / "b" / "model.safetensors").read_bytes()
    assert (
        a["command"] == "python -m lmms_sttm.organism train --out DIR --steps 2 --seed 3 --bank 6 --threads 1"
    )
    env = a["environment"]
    assert env["torch_threads"] == 1 and a["threads"] == 1 and env["deterministic_algorithms"] is True
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    from importlib import metadata

    assert env["versions"]["torch"] == metadata.version("torch")
    assert set(env["cpu"]["flags"]) <= set(Path("/proc/cpuinfo").read_text().split())


def test_a_stopped_training_resumed_by_the_same_command_gives_the_uninterrupted_weights(tmp_path):
    """Stopped after video step 2 of 4 and resumed (a new call, as after a kill): fingerprints, history
    and weight bytes equal to one uninterrupted training's; the resume files are gone at the end."""
    cmd = ["train", "--steps", "4", "--seed", "5", "--bank", "6"]
    assert main([*cmd, "--out", str(tmp_path / "whole")]) == 0
    part = tmp_path / "part"
    assert main([*cmd, "--out", str(part), "--stop-after", "2"]) == 0
    assert (part / "resume.pt").is_file() and (part / "bank.pt").is_file()
    assert not (part / "training.json").exists()
    assert main([*cmd, "--out", str(part)]) == 0
    whole, resumed = (json.loads((d / "training.json").read_text()) for d in (tmp_path / "whole", part))
    assert resumed["resumed_at"] == [2] and "resumed_at" not in whole
    assert resumed["fingerprints"] == whole["fingerprints"] and resumed["history"] == whole["history"]
    assert (part / "model.safetensors").read_bytes() == (
        tmp_path / "whole" / "model.safetensors"
    ).read_bytes()
    assert not (part / "resume.pt").exists() and not (part / "bank.pt").exists()


def test_a_resume_file_of_another_training_is_refused(tmp_path):
    out = tmp_path / "x"
    assert (
        main(["train", "--out", str(out), "--steps", "3", "--seed", "1", "--bank", "6", "--stop-after", "1"])
        == 0
    )
    with pytest.raises(SystemExit, match="another training"):
        main(["train", "--out", str(out), "--steps", "3", "--seed", "2", "--bank", "6"])


def test_fingerprint_sees_one_changed_bit():
    from lmms_sttm.organism.numerics import fingerprint

    x = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    y = x.clone()
    y.view(torch.int32)[1, 2] ^= 1  # the last bit of one float
    assert fingerprint({"w": x}) == fingerprint({"w": x.clone()})
    assert fingerprint({"w": x}) != fingerprint({"w": y})
    assert fingerprint({"w": x}) != fingerprint({"v": x})  # names count
    assert fingerprint({"w": x}) != fingerprint({"w": x.reshape(3, 2)})  # shapes count


def test_spread_command_summarises_draw_folders(tmp_path):
    for seed, acc in ((0, 50.0), (1, 75.0), (2, 100.0)):
        path = tmp_path / "d" / f"seed_{seed}" / "runs" / "none" / "ckpt" / "x_results.json"
        path.parent.mkdir(parents=True)
        res = {"sttm_acc,none": acc, "acc_task_type=ret_insert1,none": acc}
        path.write_text(json.dumps({"results": {"vnbench_sttm": res}}))
    assert main(["spread", str(tmp_path / "d"), "--out", str(tmp_path / "o")]) == 0
    lines = (tmp_path / "o" / "draws.csv").read_text().splitlines()
    assert lines[0] == "tag,family,acc_seed_0,acc_seed_1,acc_seed_2,mean,min,max"
    assert lines[1] == "none,all,50.00,75.00,100.00,75.00,50.00,100.00"
    assert lines[2] == "none,ret_insert1,50.00,75.00,100.00,75.00,50.00,100.00" and len(lines) == 3
    assert main(["spread", str(tmp_path / "empty_missing"), "--out", str(tmp_path / "o2")]) == 1


def test_organism_clips_encode_to_one_stream_every_time(tmp_path):
    """The same frames give the same h264 bytes, call after call (libx264's assembly did not:
    lmms_sttm.data.synthetic.DETERMINISTIC_X264); interleaved with other clips, as the bank does."""
    from lmms_sttm.data.synthetic import DETERMINISTIC_X264, write_frames
    from lmms_sttm.organism.clips import FPS
    from lmms_sttm.organism.sequences import rng_for

    frames = {i: render(sample_clip(rng_for(3, i), "cnt_insert1")[0]) for i in (0, 3, 5)}
    streams: dict[int, set[bytes]] = {i: set() for i in frames}
    for rep in range(6):
        for i, f in frames.items():
            path = write_frames(f, tmp_path / f"{rep}_{i}.mp4", FPS, DETERMINISTIC_X264)
            streams[i].add(path.read_bytes())
    assert all(len(s) == 1 for s in streams.values()), {i: len(s) for i, s in streams.items()}
    assert len({next(iter(s)) for s in streams.values()}) == 3


def test_draws_command_trains_each_seed_in_its_own_process_on_pinned_kernels(tmp_path, monkeypatch):
    for key in ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA"):
        monkeypatch.delenv(key, raising=False)
    args = [
        "draws",
        "--out",
        str(tmp_path),
        "--seeds",
        "5",
        "6",
        "--jobs",
        "2",
        "--steps",
        "1",
        "--bank",
        "3",
    ]
    assert main(args) == 0
    facts = {s: json.loads((tmp_path / f"seed_{s}" / "training.json").read_text()) for s in (5, 6)}
    assert facts[5]["seed"] == 5 and facts[6]["seed"] == 6
    assert facts[5]["fingerprints"]["init"] != facts[6]["fingerprints"]["init"]
    for f in facts.values():  # the train command pinned the AVX2 kernel class before torch loaded
        env = f["environment"]
        assert env["cpu_capability"] == "AVX2" and env["env"]["ATEN_CPU_CAPABILITY"] == "avx2"
        assert env["env"]["MKL_CBWR"] == "AVX2" and env["torch_threads"] == 1
    assert (tmp_path / "seed_5.log").read_text().count("[organism] trained 1 steps") == 1


def test_merged_batches_feed_the_llm_each_rows_sttm_features_at_its_representatives(tmp_path):
    """``merged`` plans STTM on each row's projected tokens; the LLM then sees exactly those plans'
    merged features (an independent ``sttm_exact`` call on the same rows, trimmed to the rows' common
    count), at the representatives' places, numbered as a thinned video of that length."""
    from lmms_sttm.merging.budget import sttm_exact, trim_to
    from lmms_sttm.organism.model import new_model
    from lmms_sttm.organism.sequences import (
        build_batch,
        clip_row,
        merged,
        target_logits,
        video_labels,
        video_rows,
    )
    from lmms_sttm.organism.train import clip_question

    model, processor = new_model(tmp_path / "m", 0)
    tok = processor.tokenizer
    rng = np.random.default_rng(7)
    clips = [sample_clip(rng, family, 6) for family in FAMILIES[:2]]
    rows = [clip_row(tok, 6, *clip_question(c, q, rng)) for c, q in clips]
    labels = [video_labels(tok, c) for c, _ in clips]
    torch.manual_seed(0)
    width = model.model.multi_modal_projector.linear_1.in_features
    tower = torch.randn(1, 6, 169, width).repeat(2, 1, 1, 1)
    tower[1] += 0.3 * torch.randn(6, 169, width)  # two rows, two different plans
    keep, plans = merged(model, tower, 0.4)
    with torch.no_grad():
        projected = video_rows(model, tower)
    by_hand = [sttm_exact(projected[i], (6, 7, 7), 0.4)[0] for i in range(2)]
    k = min(p.num_kept for p in by_hand)
    by_hand = [trim_to(p, k) for p in by_hand]
    assert keep.shape == (2, k) and abs(k - round(0.4 * 294)) <= 3
    assert not torch.equal(by_hand[0].rep_index, by_hand[1].rep_index)
    for i in range(2):
        assert torch.equal(keep[i], by_hand[i].rep_index) and bool((keep[i].diff() > 0).all())
    batch = build_batch(tok, tower, rows, labels, keep, plans)
    assert torch.equal(batch.video_labels, torch.stack(labels).gather(1, keep))
    with torch.no_grad():
        logits, video, _ = target_logits(model, batch)
        lm = model.model.language_model
        emb = lm.embed_tokens(batch.ids)
        s = batch.video_start
        emb[:, s : s + k] = torch.stack([p.features for p in by_hand])
        hidden = lm(inputs_embeds=emb, position_ids=batch.positions).last_hidden_state
        expected = model.lm_head(hidden[batch.target_rows, batch.target_pos])
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
    assert video.shape[:2] == (2, k)


def test_merged_share_trains_records_itself_and_a_resume_of_another_share_is_refused(tmp_path, monkeypatch):
    import lmms_sttm.organism.train as train

    calls = []
    real = train.merged
    monkeypatch.setattr(train, "merged", lambda *a: calls.append(a[2]) or real(*a))
    out = tmp_path / "m"
    cmd = ["train", "--out", str(out), "--steps", "4", "--seed", "1", "--bank", "6"]
    assert main([*cmd, "--merged-share", "1", "--stop-after", "1"]) == 0
    with pytest.raises(SystemExit, match="another training"):
        main(cmd)  # the recipe without merged steps
    assert main([*cmd, "--merged-share", "1"]) == 0
    assert calls and all(train.THIN_RANGE[0] <= f <= train.THIN_RANGE[1] for f in calls)  # every reduced step
    facts = json.loads((out / "training.json").read_text())
    assert facts["merged_share"] == 1.0 and "--merged-share 1.0" in facts["command"]
    assert np.isfinite(facts["history"][-1]["loss"])
    assert main([*cmd, "--merged-share", "1.5"]) == 2
