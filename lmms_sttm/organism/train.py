"""Training the organism on CPU: AdamW on the projector and the LLM, the vision tower frozen.

Each step renders one clip (family in turn, 5 frames growing to 16: :func:`frames_at`), encodes it through the evaluation pipeline and
trains on ``QUESTIONS_PER_STEP`` questions about it (the clip's own family plus the other
questions that are well defined on it, each with freshly drawn and shuffled options) and on one
auxiliary row asking the same questions without options (the answer word itself), all sharing one
prefix pass (:mod:`lmms_sttm.organism.sequences`). The loss is the cross-entropy of every target:
the reply to each MCQ (its letter), the ``<|im_end|>`` after it, the option flags (each option's
full stop predicts the letter if the option is right, else the newline that follows:
:func:`~lmms_sttm.organism.sequences.option_flag_targets`) and the auxiliary answers. Seeded: the same seed and steps give the same weights
up to BLAS reduction order.
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
    QUESTIONS,
    Clip,
    Question,
    sample_clip,
)
from lmms_sttm.organism.model import new_model, save_weights
from lmms_sttm.organism.sequences import (
    _ids,
    build_batch,
    encode_clip,
    option_flag_targets,
    question_text,
    rng_for,
    target_logits,
)

QUESTIONS_PER_STEP = 24
LOOKUP_STEPS = 300  # text-only warm-up of the option lookup (at most the run's steps)
LOOKUP_BATCH = 128
LOOKUP_TAIL = 34  # prompt tokens kept from the first option line on (short rows learn faster)
MIN_FRAMES = 5  # two needles two frames apart fit in 1..n-2
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


def step_blocks(clip: Clip, main: Question, rng: np.random.Generator, n: int) -> list[tuple[str, str]]:
    """``n`` (MCQ text, letter) blocks: half the clip's own family, the rest any valid question."""
    blocks = []
    for i in range(n):
        q = main if i < n // 2 else rng.choice(valid_questions(clip, rng))
        order = [q.options[j] for j in rng.permutation(4)]
        blocks.append((question_text(q, order), "ABCD"[order.index(q.answer)]))
    return blocks


_LOOKUP_ROWS: dict = {}


def _lookup_row(tokenizer, order: tuple[str, ...], word: str) -> tuple[list[int], list[tuple[int, int]]]:
    """``(ids, [(position, target)])`` of one text-only lookup row (cached: 360 distinct rows)."""
    key = (id(tokenizer), order, word)
    if key not in _LOOKUP_ROWS:
        letter = "ABCD"[order.index(word)]
        text = question_text(Question("ret_insert1", word, order), list(order))
        q = _ids(tokenizer, llava_prompt(text, "<video>").question)
        q = _ids(tokenizer, f" {word}") + q[-LOOKUP_TAIL:]  # the options and what follows them
        flags = option_flag_targets(tokenizer, q, letter)
        _LOOKUP_ROWS[key] = (q, [(len(q) - 1, _ids(tokenizer, letter)[0]), *flags])
    return _LOOKUP_ROWS[key]


def lookup_step(model, tokenizer, rng: np.random.Generator, batch: int) -> torch.Tensor:
    """The loss of one text-only batch: ``" word"`` then a retrieval MCQ's question part whose
    right option is that word; targets: the letter and the option flags. It teaches the letter
    readout before the needles must be read from video."""
    names = sorted(COLOURS)
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    rows, targets = [], []
    for i in range(batch):
        order = tuple(str(c) for c in rng.choice(names, 4, replace=False))
        q, tgt = _lookup_row(tokenizer, order, order[int(rng.integers(4))])
        rows.append(q)
        targets += [(i, p, t) for p, t in tgt]
    ids = torch.full((batch, max(map(len, rows))), eos)
    for i, q in enumerate(rows):
        ids[i, : len(q)] = torch.tensor(q)
    r, p, t = (torch.tensor(x) for x in zip(*targets, strict=True))
    hidden = model.model.language_model(input_ids=ids).last_hidden_state[r, p]
    return torch.nn.functional.cross_entropy(model.lm_head(hidden), t)


def frames_at(step: int, steps: int) -> int:
    """Curriculum: 5 frames at first (the needles are a large share of the tokens, so reading them
    is learned early), growing linearly to NUM_FRAMES at half of the steps, then NUM_FRAMES."""
    return min(NUM_FRAMES, MIN_FRAMES + (NUM_FRAMES - MIN_FRAMES) * 2 * step // max(1, steps))


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
) -> dict:
    """Train ``steps`` steps into ``out`` (a LLaVA-NeXT checkpoint folder); returns the training facts."""
    if threads:
        torch.set_num_threads(threads)
    began = time.time()
    out = Path(out)
    model, processor = new_model(out, seed)
    tokenizer = processor.tokenizer
    model.train()
    for p in model.model.vision_tower.parameters():
        p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=LR, betas=(0.9, 0.98), weight_decay=0.01)
    letters = torch.tensor([tokenizer.convert_tokens_to_ids(c) for c in "ABCD"])
    history, window = [], []
    lookup = min(LOOKUP_STEPS, steps)
    for step in range(lookup):
        for group in opt.param_groups:
            group["lr"] = LR * min(1.0, (step + 1) / WARMUP)
        loss = lookup_step(model, tokenizer, rng_for(seed + 1_000_000, step), LOOKUP_BATCH)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if (step + 1) % 50 == 0 or step + 1 == lookup:
            history.append({"lookup_step": step + 1, "loss": round(loss.item(), 4)})
            print(
                f"[organism] lookup {step + 1}/{lookup} loss {loss.item():.3f} ({time.time() - began:.0f} s)",
                flush=True,
            )
    for step in range(steps):
        rng = rng_for(seed, step)
        frames = frames_at(step, steps)
        clip, main = sample_clip(rng, FAMILIES[step % len(FAMILIES)], frames)
        with torch.no_grad():
            tower = encode_clip(clip, model, processor)
        aux = [(QUESTIONS[q.family], f" {q.answer}") for q in valid_questions(clip, rng)]  # as in the reply
        batch = build_batch(tokenizer, tower, step_blocks(clip, main, rng, QUESTIONS_PER_STEP), aux)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps)
        logits = target_logits(model, batch)
        loss = torch.nn.functional.cross_entropy(logits, batch.target_ids)
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
        if save_every and (step + 1) % save_every == 0 and step + 1 < steps:
            save_weights(model, out)  # a usable checkpoint while training goes on
    model.eval()
    save_weights(model, out)
    command = f"python -m lmms_sttm.organism train --out DIR --steps {steps} --seed {seed}"
    facts = {
        "command": command + (f" --threads {threads}" if threads else ""),
        "steps": steps,
        "lookup_steps": lookup,
        "seed": seed,
        "threads": threads,
        "seconds": round(time.time() - began, 1),
        "history": history,
    }
    (out / "training.json").write_text(json.dumps(facts, indent=1) + "\n")
    return facts
