"""Training/evaluation forward passes: one video prefix, then a batch of question blocks on it.

The prefix is the evaluation prompt up to the end of the task's instruction line (system turn, the
video's ``F*49`` placeholders replaced by the projected, pooled features, the instruction); each
block is the rest of one question's prompt exactly as the evaluation writes it, followed by its
answer letter. The prefix is run once with a KV cache,
the cache is repeated for the blocks, and the blocks run as one batch whose positions continue the
prefix's: every block is the forward pass of an ordinary prompt, and one prefix serves many
questions (gradients flow through the shared cache).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lmms_sttm.data.synthetic import write_frames
from lmms_sttm.models.prompts import llava_prompt
from lmms_sttm.models.video_inputs import llava_tower
from lmms_sttm.organism.clips import FPS, QUESTIONS, Clip, Question, option_texts, render
from lmms_sttm.tasks.common.prompt import instruction, mcq_text
from lmms_sttm.video import load_video

VNBENCH_MAX_FRAMES = 180


@dataclass
class Batch:
    """``prefix_ids [P]`` (the video span holds the placeholder id from ``video_start``), the tower
    output ``[F, 169, C]``, ``block_ids [B, Lq]`` (right-padded) and the targets: token
    ``target_ids[j]`` is predicted at ``(target_rows[j], target_pos[j])``; ``is_letter[j]`` marks
    the MCQ answer letters (the rest: ``<|im_end|>``, option flags, auxiliary answers)."""

    prefix_ids: torch.Tensor
    video_start: int
    tower: torch.Tensor
    block_ids: torch.Tensor
    target_rows: torch.Tensor
    target_pos: torch.Tensor
    target_ids: torch.Tensor
    is_letter: torch.Tensor


def encode_clip(clip: Clip, model, processor) -> torch.Tensor:
    """The clip through the evaluation pipeline (h264 file, the LLaVA frame sampler, the tower):
    the tower output ``[F, 169, C]``."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mp4"
        write_frames(render(clip), path, FPS)
        frames, _, _ = load_video(str(path), target_fps=1.0, max_frames=VNBENCH_MAX_FRAMES, backend="pyav")
    tower, _ = llava_tower(model, processor, frames)
    return tower


def question_text(question: Question, order: list[str]) -> str:
    """The task's MCQ text (the ``vnbench_sttm`` prompt) for ``question`` with options in ``order``."""
    return mcq_text(QUESTIONS[question.family], option_texts(order), prefixed=True, n_letters=4)


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def answer_tokens(tokenizer, letter: str) -> list[int]:
    """The organism's reply to an MCQ: the option letter alone (``"B"``)."""
    return _ids(tokenizer, letter)


def option_flag_targets(tokenizer, q: list[int], letter: str) -> list[tuple[int, int]]:
    """Training-only targets on the prompt's option lines: ``(position, token)`` at the full stop
    after each option text, the option's letter for the right option and the prompt's own next
    token (a newline) for the others. Prompt positions are never generated, so these targets only
    shape the features: each option marks itself right or wrong where the reply can find it with
    one attention step (a direct lookup of the answer among the options learns slowly on this
    size of model; these targets break that plateau)."""
    newline, dot = _ids(tokenizer, "\n")[0], _ids(tokenizer, ".")[0]
    out = []
    for c in "ABCD":
        code = _ids(tokenizer, c)[0]
        starts = [j for j in range(len(q) - 2) if q[j] == newline and q[j + 1] == code and q[j + 2] == dot]
        if len(starts) != 1:
            raise ValueError(f"option {c} is not found once in the prompt")
        end = next(j for j in range(starts[0] + 3, len(q)) if q[j] == dot)
        out.append((end, code if c == letter else newline))
    return out


def build_batch(
    tokenizer, tower: torch.Tensor, blocks: list[tuple[str, str]], aux: list[tuple[str, str]] = ()
) -> Batch:
    """``blocks``: ``(MCQ text, letter)`` per question; ``aux``: ``(question, answer)``.

    The MCQ texts all start with the task's instruction line, which joins the shared prefix; each
    block row is the rest of its prompt plus the reply (:func:`answer_tokens`; targets: the reply's
    tokens, then ``<|im_end|>``, and the option flags of :func:`option_flag_targets`).
    Token ids are those of the whole prompt (checked). The ``aux`` pairs share one extra row,
    ``question<|im_end|>\n<|im_start|>assistant\n`` + the answer word's tokens + ``<|im_end|>\n``
    each (all targets): they train reading the needles without the option letters.
    """
    video_id = tokenizer.convert_tokens_to_ids("<video>")
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    shared = instruction(4) + "\n"
    head = llava_prompt("", "<video>").prefix
    prefix = _ids(tokenizer, head + shared)
    at = prefix.index(video_id)
    ids = prefix[:at] + [video_id] * (tower.shape[0] * 49) + prefix[at + 1 :]
    rows, targets = [], []  # targets: (row, position, token, is_letter)
    for text, letter in blocks:
        if not text.startswith(shared):
            raise ValueError("an MCQ text does not start with the task's instruction line")
        q = _ids(tokenizer, llava_prompt(text[len(shared) :], "<video>").question)
        if prefix + q != _ids(tokenizer, llava_prompt(text, "<video>").text):
            raise ValueError("splitting the prompt after the instruction line changed its tokens")
        reply = answer_tokens(tokenizer, letter)
        r = len(rows)
        rows.append(q + reply)
        for k, tok in enumerate([*reply, eos]):
            targets.append((r, len(q) - 1 + k, tok, k == len(reply) - 1))
        targets += [(r, pos, tok, False) for pos, tok in option_flag_targets(tokenizer, q, letter)]
    if aux:
        row: list[int] = []
        for question, word in aux:
            row += _ids(tokenizer, llava_prompt(question, "<video>").question)
            answer = _ids(tokenizer, word) + [eos]
            for k, tok in enumerate(answer):
                targets.append((len(rows), len(row) - 1 + k, tok, False))
            row += answer + _ids(tokenizer, "\n")
        rows.append(row)
    width = max(map(len, rows))
    block_ids = torch.full((len(rows), width), eos)
    for i, q in enumerate(rows):
        block_ids[i, : len(q)] = torch.tensor(q)
    r, p, t, letter = zip(*targets, strict=True)
    return Batch(
        torch.tensor(ids), at, tower, block_ids, torch.tensor(r), torch.tensor(p), torch.tensor(t),
        torch.tensor(letter),
    )  # fmt: skip


def target_logits(model, batch: Batch) -> torch.Tensor:
    """Logits ``[len(target_ids), V]`` at the target positions (gradients reach projector and LLM)."""
    inner = model.model
    lm = inner.language_model
    proj = inner.multi_modal_projector(batch.tower)
    rows = inner.apply_pooling(proj).reshape(-1, proj.shape[-1])  # [F*49, D]
    emb = lm.embed_tokens(batch.prefix_ids[None])
    s = batch.video_start
    emb = torch.cat([emb[:, :s], rows[None].to(emb.dtype), emb[:, s + rows.shape[0] :]], dim=1)
    p = emb.shape[1]
    out = lm(inputs_embeds=emb, position_ids=torch.arange(p)[None], use_cache=True)
    cache = out.past_key_values
    b, lq = batch.block_ids.shape
    cache.batch_repeat_interleave(b)
    positions = (p + torch.arange(lq))[None].expand(b, lq)
    out = lm(input_ids=batch.block_ids, position_ids=positions, past_key_values=cache, use_cache=True)
    return model.lm_head(out.last_hidden_state[batch.target_rows, batch.target_pos])


def rng_for(seed: int, step: int) -> np.random.Generator:
    return np.random.default_rng([seed, step])
