"""Training the organism on CPU: AdamW on the projector and the LLM, the vision tower frozen.

The organism replies with the answer word and then the letter (``" redB"``:
:func:`~lmms_sttm.organism.sequences.answer_tokens`). Training has two phases:

1. ``LOOKUP_STEPS`` text-only steps (:func:`lookup_step`): the options of an MCQ, then the reply's
   word; targets: the letter, each option's own letter at its word, and one attention head's weight
   from the reply's word to the answer's option (:func:`~lmms_sttm.organism.matching.match_attention`:
   without it, finding the word among the options is an induction-style lookup whose plateau
   outlasted the training budget for the object words). It goes on inside the video phase
   (``LOOKUP_MIX`` rows in every step).
2. A bank of ``BANK`` clips (the families in turn, ``NUM_FRAMES`` frames) is encoded once through
   the evaluation pipeline (h264 file, frame sampler, frozen tower: :func:`make_bank`); each step
   trains on ``BATCH`` clips drawn from it, one row per clip
   (:func:`~lmms_sttm.organism.sequences.clip_row`): an MCQ (the clip's own family half of the time,
   else any question well defined on it; options freshly drawn and shuffled) with its reply.
   Targets: the reply and ``<|im_end|>``, each option's letter at its word, the answer word at the
   question's last token, the matching head's attention, and at every video position the needle's
   word or the ``<video>`` placeholder (:func:`~lmms_sttm.organism.sequences.video_labels`). Many
   clips per step matter: one clip per step never learned to read the needles. In ``THIN_SHARE``
   of the steps the rows see a random subset of their visual tokens
   (:func:`~lmms_sttm.organism.sequences.thinned`), numbered like a shorter video, and the reply
   after the position gap that the STTM authors' decoding leaves after any reduction
   (:func:`~lmms_sttm.organism.sequences.build_batch`). Measured on 96 held-out questions (8 videos
   per family) after 650 steps: without either, STTM exact 50% / 30% scored 31% / 25% against 96%
   unreduced; thinning alone 38% / 23% against 100% (words right, letters wrong: with compact
   decode positions the same weights scored 73% at exact 50%); both 78% / 79% against 81%; with
   the gaps in the lookup rows too (:func:`lookup_step`) 86.5% / 55.2% against 100%.

Reproducible: every random draw comes from ``rng_for(seed, ...)`` (numpy generators of the seed
and the step alone) or from ``torch.manual_seed(seed)`` before the initialisation; the numerics are
pinned by :func:`~lmms_sttm.organism.numerics.pin` (thread count, deterministic algorithms). The
same seed, steps and threads on a CPU of the same kernel class give the same weights bit for bit
(``training.json`` records SHA-256 fingerprints of the initial weights, the clip bank, the weights
after the lookup phase and the final weights, and the machine: :func:`~lmms_sttm.organism.numerics.environment`).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from lmms_sttm.models.prompts import llava_prompt
from lmms_sttm.organism.clips import (
    COLOURS,
    COUNTS,
    FAMILIES,
    NUM_FRAMES,
    Clip,
    Question,
    sample_clip,
)
from lmms_sttm.organism.matching import attention_input, match_attention, match_loss
from lmms_sttm.organism.model import new_model, save_weights
from lmms_sttm.organism.numerics import environment, fingerprint, pin
from lmms_sttm.organism.sequences import (
    _ids,
    answer_tokens,
    build_batch,
    clip_row,
    encode_clip,
    match_key,
    merged,
    option_letter_targets,
    options_start,
    question_text,
    rng_for,
    target_logits,
    thinned,
    video_labels,
)

BATCH = 16  # clips per step
BANK = 3600  # clips encoded once, drawn from with fresh options every time
LOOKUP_STEPS = 600  # text-only warm-up of the option lookup (at most 4x the video steps)
LOOKUP_MIX = 32  # text-only lookup rows in every video step too
LOOKUP_BATCH = 32
THIN_SHARE = 0.5  # video steps whose rows see a random subset of the visual tokens...
THIN_RANGE = (0.15, 1.0)  # ...of this fraction (uniform), numbered on like a shorter video
LOOKUP_GAP = round((1 - THIN_RANGE[0]) * NUM_FRAMES * 49)  # the largest such gap, in lookup rows too
LR = 2e-3
WARMUP = 40


def valid_questions(clip: Clip, rng: np.random.Generator) -> list[Question]:
    """Every family's question that has one right answer on ``clip`` (fresh distractors)."""
    names = sorted(COLOURS)
    colours = [c for _, c in clip.needles]
    out = []
    if len(set(colours)) == 1:
        others = [c for c in names if c != colours[0]]
        out.append(Question("ret_insert1", colours[0], (colours[0], *rng.choice(others, 3, replace=False))))
    if len(colours) == 2 and colours[0] != colours[1]:
        others = [c for c in names if c not in colours]
        out.append(Question("ord_insert1", colours[0], (*colours, *rng.choice(others, 2, replace=False))))
    k = str(len(colours))
    out.append(Question("cnt_insert1", k, (k, *[c for c in COUNTS if c != k])))
    return out


def clip_question(clip: Clip, main: Question, rng: np.random.Generator) -> tuple[str, str, str]:
    """``(MCQ text, letter, answer)``: ``main`` half of the time, else any valid question; options
    shuffled."""
    q = main if rng.random() < 0.5 else rng.choice(valid_questions(clip, rng))
    order = [q.options[j] for j in rng.permutation(4)]
    return question_text(q, order), "ABCD"[order.index(q.answer)], q.answer


def make_bank(model, processor, n: int, seed: int, log=print) -> tuple[torch.Tensor, list]:
    """``(tower [n, NUM_FRAMES, 169, C] float16, [(clip, question)] * n)``: ``n`` training clips
    (family ``i % 3``, drawn from ``rng_for(seed, i)``) through the evaluation pipeline."""
    towers, items, began = [], [], time.time()
    with torch.no_grad():
        for i in range(n):
            clip, question = sample_clip(rng_for(seed, i), FAMILIES[i % len(FAMILIES)], NUM_FRAMES)
            towers.append(encode_clip(clip, model, processor).to(torch.float16))
            items.append((clip, question))
            if (i + 1) % 600 == 0 or i + 1 == n:
                log(f"[organism] bank {i + 1}/{n} clips ({time.time() - began:.0f} s)")
    return torch.stack(towers), items


_LOOKUP_ROWS: dict = {}


def _lookup_row(
    tokenizer, family: str, order: tuple[str, ...], word: str
) -> tuple[list[int], list[tuple[int, int]], tuple[int, int], int]:
    """``(ids, [(position, target)], (query, key), reply_start)`` of one text-only lookup row
    (cached: 1536 distinct rows); ``(query, key)`` and ``reply_start`` as in
    :func:`~lmms_sttm.organism.sequences.clip_row`."""
    key = (id(tokenizer), family, order, word)
    if key not in _LOOKUP_ROWS:
        letter = "ABCD"[order.index(word)]
        text = question_text(Question(family, word, order), list(order))
        q = _ids(tokenizer, llava_prompt(text, "<video>").question)
        q = q[options_start(tokenizer, q, option_letter_targets(tokenizer, q)) :]  # options onwards
        reply = answer_tokens(tokenizer, letter, word)
        options = option_letter_targets(tokenizer, q)
        query = len(q) + len(reply) - 2
        _LOOKUP_ROWS[key] = (
            q + reply[:-1],
            [*options, (query, reply[-1])],
            (query, match_key(options, letter)),
            len(q),
        )
    return _LOOKUP_ROWS[key]


def lookup_step(model, tokenizer, rng: np.random.Generator, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(loss, match loss)`` of one text-only batch: the options of a retrieval or counting MCQ and
    what follows them, then the reply up to its letter
    (:func:`~lmms_sttm.organism.sequences.answer_tokens`: the answer word); targets: the letter,
    each option's letter at its word (:func:`~lmms_sttm.organism.sequences.option_letter_targets`)
    and the matching head's attention from the reply's word to the answer's option
    (:func:`~lmms_sttm.organism.matching.match_attention`). It teaches finding the reply's word
    among the options before the word must be read from video. In ``THIN_SHARE`` of the rows the
    reply sits after a position gap of 1 to ``LOOKUP_GAP`` (the video steps' gaps,
    :func:`~lmms_sttm.organism.sequences.build_batch`)."""
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    rows, targets, match, gaps = [], [], [], []
    for i in range(batch):
        family, pool = ("ret_insert1", sorted(COLOURS)) if rng.random() < 0.5 else ("cnt_insert1", COUNTS)
        order = tuple(str(c) for c in rng.choice(pool, 4, replace=False))
        q, tgt, pair, reply_start = _lookup_row(tokenizer, family, order, order[int(rng.integers(4))])
        gap = int(rng.integers(1, LOOKUP_GAP + 1)) if rng.random() < THIN_SHARE else 0
        gaps.append((reply_start, gap))
        rows.append(q)
        targets += [(i, p, t) for p, t in tgt]
        match.append(pair)
    ids = torch.full((batch, max(map(len, rows))), eos)
    positions = torch.arange(ids.shape[1]).repeat(batch, 1)
    for i, (q, (reply_start, gap)) in enumerate(zip(rows, gaps, strict=True)):
        ids[i, : len(q)] = torch.tensor(q)
        positions[i, reply_start:] += gap
    r, p, t = (torch.tensor(x) for x in zip(*targets, strict=True))
    lm = model.model.language_model
    with attention_input(lm) as seen:
        hidden = lm(input_ids=ids, position_ids=positions).last_hidden_state[r, p]
    loss = torch.nn.functional.cross_entropy(model.lm_head(hidden), t)
    return loss, match_loss(match_attention(lm, seen, torch.tensor(match)))


def lr_at(step: int, steps: int) -> float:
    if step < WARMUP:
        return LR * (step + 1) / WARMUP
    frac = (step - WARMUP) / max(1, steps - WARMUP)
    return LR * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))


def train(
    out: Path,
    steps: int,
    seed: int = 0,
    log_every: int = 10,
    threads: int | None = None,
    save_every: int = 25,
    bank: int = BANK,
    stop_after: int | None = None,
    merged_share: float = 0.0,
) -> dict:
    """Train ``steps`` steps into ``out`` (a LLaVA-NeXT checkpoint folder); returns the training facts.

    Resumable: every ``save_every`` video steps (and at ``stop_after``, where it returns early, facts
    with ``"stopped_at"``) the whole training state goes to ``out/resume.pt`` and the clip bank, once,
    to ``out/bank.pt``; a later call with the same arguments continues from there and gives the weights
    an uninterrupted training gives, bit for bit (the step's draws depend on the seed and the step
    alone). Both files are removed when the training finishes.

    ``merged_share``: the share of the reduced steps whose rows see STTM-merged tokens
    (:func:`~lmms_sttm.organism.sequences.merged`, the same uniform retention) instead of a thinned
    subset; its draws come from a generator of their own, so ``0`` trains exactly what the recipe
    without it trained."""
    pin(threads)
    began = time.time()
    out = Path(out)
    model, processor = new_model(out, seed)
    prints = {"init": fingerprint(model.state_dict())}
    tokenizer = processor.tokenizer
    model.train()
    for p in model.model.vision_tower.parameters():
        p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=LR, betas=(0.9, 0.98), weight_decay=0.01)
    letters = torch.tensor([tokenizer.convert_tokens_to_ids(c) for c in "ABCD"])
    history, window = [], []
    lookup = min(LOOKUP_STEPS, 4 * steps)
    state = resume_state(out, seed, steps, bank, merged_share)
    first, spent, resumed = 0, 0.0, []
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        torch.set_rng_state(state["torch_rng"])
        history, window, prints = state["history"], state["window"], state["prints"]
        first, spent, resumed = state["step"], state["seconds"], [*state["resumed"], state["step"]]
        print(f"[organism] resuming at video step {first} ({spent:.0f} s before)", flush=True)
    for step in range(lookup if state is None else 0):
        for group in opt.param_groups:
            group["lr"] = LR * min(1.0, (step + 1) / WARMUP)
        loss, matched = lookup_step(model, tokenizer, rng_for(seed + 1_000_000, step), LOOKUP_BATCH)
        loss = loss + matched
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if (step + 1) % 200 == 0 or step + 1 == lookup:
            history.append({"lookup_step": step + 1, "loss": round(loss.item(), 4)})
            print(
                f"[organism] lookup {step + 1}/{lookup} loss {loss.item():.3f} ({time.time() - began:.0f} s)",
                flush=True,
            )
    if state is None:
        prints["after_lookup"] = fingerprint(model.state_dict())
    towers, items = stored_bank(out, prints)
    if towers is None:
        towers, items = make_bank(
            model, processor, bank, seed + 2_000_000, log=lambda m: print(m, flush=True)
        )
        encoded = fingerprint({"towers": towers})
        if prints.setdefault("bank", encoded) != encoded:  # a resumed training without its bank.pt
            raise SystemExit("the re-encoded clip bank differs from the one this training started with")
    for step in range(first, steps):
        rng = rng_for(seed, step)
        pick = rng.choice(len(items), min(BATCH, len(items)), replace=False)
        rows, labels = [], []
        for i in pick.tolist():
            clip, main = items[i]
            rows.append(clip_row(tokenizer, clip.num_frames, *clip_question(clip, main, rng)))
            labels.append(video_labels(tokenizer, clip))
        keep, plans, tower = None, None, towers[torch.from_numpy(pick)].float()
        if rng.random() < THIN_SHARE:  # a video of fewer tokens: robust to any reduction's shorter sequence
            fraction = rng.uniform(*THIN_RANGE)
            if merged_share and rng_for(seed + 4_000_000, step).random() < merged_share:
                keep, plans = merged(model, tower, fraction)
            else:
                keep = thinned(rng, len(pick), len(labels[0]), fraction)
        batch = build_batch(tokenizer, tower, rows, labels, keep, plans)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps)
        logits, video, attention = target_logits(model, batch)
        loss = torch.nn.functional.cross_entropy(logits, batch.target_ids)
        loss = loss + torch.nn.functional.cross_entropy(video.flatten(0, 1), batch.video_labels.flatten())
        loss = (
            loss
            + match_loss(attention)
            + sum(lookup_step(model, tokenizer, rng_for(seed + 3_000_000, step), LOOKUP_MIX))
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        mcq = logits[batch.is_letter][:, letters].argmax(-1)
        right = (letters[mcq] == batch.target_ids[batch.is_letter]).float().mean().item()
        window.append((loss.item(), right))
        if (step + 1) % log_every == 0 or step + 1 == steps:
            mean_loss = sum(w[0] for w in window) / len(window)
            acc = sum(w[1] for w in window) / len(window)
            history.append({"step": step + 1, "loss": round(mean_loss, 4), "train_acc": round(acc, 3)})
            print(f"[organism] step {step + 1}/{steps} loss {mean_loss:.3f} acc {acc:.2f} "
                  f"({time.time() - began:.0f} s)", flush=True)  # fmt: skip
            window = []
        if (save_every and (step + 1) % save_every == 0 and step + 1 < steps) or step + 1 == stop_after:
            save_weights(model, out)  # a usable checkpoint while training goes on
            seconds = spent + time.time() - began
            save_state(out, model, opt, towers, items, seed=seed, steps=steps, bank=bank,
                       merged_share=merged_share, step=step + 1,
                       history=history, window=window, prints=prints, seconds=seconds, resumed=resumed)  # fmt: skip
            if step + 1 == stop_after:
                print(
                    f"[organism] stopped after video step {stop_after}; resume with the same command",
                    flush=True,
                )
                return {"stopped_at": stop_after, "seconds": round(seconds, 1)}
    model.eval()
    save_weights(model, out)
    prints["final"] = fingerprint(model.state_dict())
    command = f"python -m lmms_sttm.organism train --out DIR --steps {steps} --seed {seed}"
    command += "" if bank == BANK else f" --bank {bank}"
    command += f" --merged-share {merged_share}" if merged_share else ""
    facts = {
        "command": command + (f" --threads {threads}" if threads else ""),
        "steps": steps,
        "lookup_steps": lookup,
        "bank": bank,
        "batch": BATCH,
        **({"merged_share": merged_share} if merged_share else {}),
        "seed": seed,
        "threads": threads,
        "seconds": round(spent + time.time() - began, 1),
        **({"resumed_at": resumed} if resumed else {}),
        "fingerprints": prints,
        "environment": environment(),
        "history": history,
    }
    (out / "training.json").write_text(json.dumps(facts, indent=1) + "\n")
    for name in (RESUME, BANK_FILE):
        (out / name).unlink(missing_ok=True)
    return facts


RESUME, BANK_FILE = "resume.pt", "bank.pt"


def save_state(out: Path, model, opt, towers, items, **state) -> None:
    """The training state after video step ``state["step"]`` to ``out/resume.pt`` (written whole, then
    renamed); the clip bank to ``out/bank.pt`` when not there yet."""
    if not (out / BANK_FILE).is_file():
        torch.save({"towers": towers, "items": items}, out / (BANK_FILE + ".tmp"))
        (out / (BANK_FILE + ".tmp")).replace(out / BANK_FILE)
    state = {
        **state,
        "model": model.state_dict(),
        "opt": opt.state_dict(),
        "torch_rng": torch.get_rng_state(),
    }
    torch.save(state, out / (RESUME + ".tmp"))
    (out / (RESUME + ".tmp")).replace(out / RESUME)


def resume_state(out: Path, seed: int, steps: int, bank: int, merged_share: float = 0.0) -> dict | None:
    """The state saved by :func:`save_state` in ``out`` when it belongs to this training (same seed,
    steps, bank and merged share), else None."""
    path = out / RESUME
    if not path.is_file():
        return None
    state = torch.load(path, weights_only=False)
    theirs = (state["seed"], state["steps"], state["bank"], state.get("merged_share", 0.0))
    if theirs != (seed, steps, bank, merged_share):
        raise SystemExit(f"{path} belongs to another training (seed, steps, bank, merged share = "
                         f"{', '.join(map(str, theirs))}); remove it or use another --out")  # fmt: skip
    return state


def stored_bank(out: Path, prints: dict) -> tuple[torch.Tensor | None, list | None]:
    """The clip bank saved in ``out`` when its fingerprint is the one ``prints`` recorded, else (None, None)."""
    path = out / BANK_FILE
    if "bank" not in prints or not path.is_file():
        return None, None
    bank = torch.load(path, weights_only=False)
    if fingerprint({"towers": bank["towers"]}) != prints["bank"]:
        raise SystemExit(
            f"{path} is not the clip bank this training recorded; remove it to re-encode the bank"
        )
    return bank["towers"], bank["items"]
