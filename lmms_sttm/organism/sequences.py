"""Training rows: one clip's evaluation prompt and its reply, batched over clips.

Each row is exactly the prompt that ``vnbench_sttm`` writes for an MCQ on the clip (system turn, the
video's ``F*49`` placeholders replaced by the projected, pooled features, the instruction, question
and options), the reply (the answer word, then the letter) and ``<|im_end|>``. Besides the reply,
training-only targets sit on prompt and video positions. A batch holds several clips of one length.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from lmms_sttm.data.synthetic import DETERMINISTIC_X264, write_frames
from lmms_sttm.models.prompts import llava_prompt
from lmms_sttm.models.video_inputs import llava_tower
from lmms_sttm.organism.clips import FPS, QUESTIONS, Clip, Question, option_texts, render
from lmms_sttm.organism.matching import attention_input, match_attention
from lmms_sttm.tasks.common.prompt import mcq_text
from lmms_sttm.video import load_video

VNBENCH_MAX_FRAMES = 180


def encode_clip(clip: Clip, model, processor) -> torch.Tensor:
    """The clip through the evaluation pipeline (h264 file, the LLaVA frame sampler, the tower):
    the tower output ``[F, 169, C]``."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mp4"
        write_frames(render(clip), path, FPS, DETERMINISTIC_X264)
        frames, _, _ = load_video(str(path), target_fps=1.0, max_frames=VNBENCH_MAX_FRAMES, backend="pyav")
    tower, _ = llava_tower(model, processor, frames)
    return tower


def question_text(question: Question, order: list[str]) -> str:
    """The task's MCQ text (the ``vnbench_sttm`` prompt) for ``question`` with options in ``order``."""
    return mcq_text(QUESTIONS[question.family], option_texts(order), prefixed=True, n_letters=4)


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def answer_tokens(tokenizer, letter: str, answer: str) -> list[int]:
    """The organism's reply to an MCQ: the answer as the options write it, then the option letter
    (``" redB"``, ``" 2C"``; the letter is its own token after each answer): a one-word chain of
    thought. The benchmarks' parser reads the first capital A-D, which is the letter (the answers
    are lower-case words and digits)."""
    return _ids(tokenizer, f" {answer}{letter}")


def option_letter_targets(tokenizer, q: list[int]) -> list[tuple[int, int]]:
    """Training-only targets on the prompt's option lines: ``(position, token)``, at the last token
    of each option's text (before its full stop), the option's own letter; option A's comes first. Prompt positions are
    never generated, so these only shape the features: each option's word carries its letter,
    where the reply's word (:func:`answer_tokens`) finds it by matching itself (a lookup of the
    letter without them stays at chance on this size of model)."""
    newline, dot = _ids(tokenizer, "\n")[0], _ids(tokenizer, ".")[0]
    out = []
    for c in "ABCD":
        code = _ids(tokenizer, c)[0]
        starts = [j for j in range(len(q) - 2) if q[j] == newline and q[j + 1] == code and q[j + 2] == dot]
        if len(starts) != 1:
            raise ValueError(f"option {c} is not found once in the prompt")
        end = next(j for j in range(starts[0] + 3, len(q)) if q[j] == dot)
        out.append((end - 1, code))
    return out


class Row(NamedTuple):
    """One clip's training row (:func:`clip_row`)."""

    ids: list[int]
    targets: list[tuple[int, int, bool]]
    match: tuple[int, int]
    reply_start: int


def clip_row(tokenizer, frames: int, text: str, letter: str, answer: str) -> Row:
    """One training row for a clip of ``frames`` frames: the evaluation prompt of the MCQ ``text``
    (its ``<video>`` placeholder widened to ``frames * 49`` copies), the reply (``answer`` then
    ``letter``) and ``<|im_end|>``.

    Returns ``Row(ids, targets, match, reply_start)``; a target ``(position, token, is_letter)``
    says that ``token`` is predicted at ``position``: the reply (:func:`answer_tokens`) and its
    ``<|im_end|>``, the option letters (:func:`option_letter_targets`) and, at the question's last
    token, the last token of the ``answer`` word (``" red"``, ``"2"``) as the options write it (the
    question line carries the answer before the options). No other turn follows: earlier weights
    also trained plain questions answered by a word and ``<|im_end|>``, and under STTM exact 30%
    ended 316 of 400 retrieval/ordering replies after the (right) word. ``match = (query, key)``: the reply word's last position (where the letter
    is predicted) and the answer option's word (:func:`match_key`), the pair the matching head is
    taught; ``reply_start``: the reply's first position.
    """
    video_id = tokenizer.convert_tokens_to_ids("<video>")
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    prompt = _ids(tokenizer, llava_prompt(text, "<video>").text)
    at = prompt.index(video_id)
    q = prompt[:at] + [video_id] * (frames * 49) + prompt[at + 1 :]
    reply = answer_tokens(tokenizer, letter, answer)
    targets = [(len(q) - 1 + k, tok, k == len(reply) - 1) for k, tok in enumerate([*reply, eos])]
    options = option_letter_targets(tokenizer, q)
    targets += [(pos, tok, False) for pos, tok in options]
    question_end = options_start(tokenizer, q, options) - 1
    targets.append((question_end, _ids(tokenizer, f" {answer}")[-1], False))
    return Row(q + reply + [eos], targets, (len(q) + len(reply) - 2, match_key(options, letter)), len(q))


def match_key(options: list[tuple[int, int]], letter: str) -> int:
    """The position of option ``letter``'s word (``options``: :func:`option_letter_targets`)."""
    return options["ABCD".index(letter)][0]


def options_start(tokenizer, q: list[int], options: list[tuple[int, int]]) -> int:
    """Index in ``q`` of the newline before ``"A. "`` (``options``: :func:`option_letter_targets`)."""
    newline = _ids(tokenizer, "\n")[0]
    return next(j for j in range(options[0][0], -1, -1) if q[j] == newline)


@dataclass
class Batch:
    """``B`` rows on ``B`` clips of one length: ``ids [B, L]`` (right-padded; each row's video span
    ``video_start : video_start + K`` holds the placeholder id), the tower outputs
    ``tower [B, F, 169, C]`` and the targets: ``target_ids[j]`` is predicted at
    ``(target_rows[j], target_pos[j])``; ``is_letter[j]`` marks the MCQ answer letters;
    ``video_labels [B, K]`` (:func:`video_labels`) are the targets at the video positions;
    ``match [B, 2]`` each row's ``(query, key)`` positions (:func:`clip_row`); ``positions [B, L]``
    the RoPE position ids; ``keep [B, K]`` the visual tokens the rows see (``None``: all ``K = F*49``),
    or with ``merge`` (one STTM plan per row, :func:`merged`) their merged groups' representatives."""

    ids: torch.Tensor
    video_start: int
    tower: torch.Tensor
    target_rows: torch.Tensor
    target_pos: torch.Tensor
    target_ids: torch.Tensor
    is_letter: torch.Tensor
    video_labels: torch.Tensor
    match: torch.Tensor
    positions: torch.Tensor
    keep: torch.Tensor | None = None
    merge: list | None = None


def video_labels(tokenizer, clip: Clip) -> torch.Tensor:
    """Training-only targets ``[F*49]`` at a clip's video positions: every token of a needle frame
    predicts its object's word (``" red"``, as the options and plain answers write it), every other
    token the ``<video>`` placeholder. Never generated, they make the needle tokens carry the word
    the options are matched against (reading the object through the answer alone did not start
    within the training budget when the three families are trained together)."""
    labels = torch.full((clip.num_frames, 49), tokenizer.convert_tokens_to_ids("<video>"))
    for frame, name in clip.needles:
        labels[frame] = _ids(tokenizer, f" {name}")[0]
    return labels.reshape(-1)


def build_batch(
    tokenizer,
    tower: torch.Tensor,
    rows: list[Row],
    labels: list[torch.Tensor],
    keep: torch.Tensor | None = None,
    merge: list | None = None,
) -> Batch:
    """``tower [B, F, 169, C]``, one :func:`clip_row` result and one :func:`video_labels` per clip.

    ``keep [B, K]`` (sorted indices into each row's ``F*49`` video tokens; :func:`thinned`) makes the
    rows see only those visual tokens (targets, match positions and video labels follow); the
    prompt is numbered on from the video's start, the reply from where the unreduced prompt would
    end, as the STTM authors' decoding places generated tokens after any reduction (``N + i``,
    ``engine.patch``): a position gap of ``F*49 - K`` before the reply. ``merge``: with ``keep`` the
    representatives of :func:`merged`, its plans (one per row), applied in :func:`target_logits`."""
    video_id = tokenizer.convert_tokens_to_ids("<video>")
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    starts = {row.ids.index(video_id) for row in rows}
    if len(starts) != 1:
        raise ValueError("the rows' video spans do not start at one position")
    start, n = starts.pop(), labels[0].shape[0]
    cut = 0 if keep is None else n - keep.shape[1]  # placeholders dropped from every row
    ids = torch.full((len(rows), max(len(r.ids) for r in rows) - cut), eos)
    positions = torch.arange(ids.shape[1]).repeat(len(rows), 1)
    targets = []
    for i, (row, tgt, _, reply_start) in enumerate(rows):
        row = row[: start + n - cut] + row[start + n :]
        ids[i, : len(row)] = torch.tensor(row)
        positions[i, reply_start - cut :] += cut
        if any(p < start + n for p, _, _ in tgt):
            raise ValueError("a target sits before the video's end")
        targets += [(i, p - cut, *rest) for p, *rest in tgt]
    r, p, t, letter = zip(*targets, strict=True)
    video = torch.stack(labels)
    return Batch(
        ids,
        start,
        tower,
        torch.tensor(r),
        torch.tensor(p),
        torch.tensor(t),
        torch.tensor(letter),
        video if keep is None else video.gather(1, keep),
        torch.tensor([r.match for r in rows]) - cut,
        positions,
        keep,
        merge,
    )


def thinned(rng: np.random.Generator, rows: int, n: int, fraction: float) -> torch.Tensor:
    """``[rows, round(fraction * n)]``: for each row its own random sorted subset of ``n`` visual tokens."""
    k = max(1, round(fraction * n))
    return torch.from_numpy(np.sort(np.stack([rng.choice(n, k, replace=False) for _ in range(rows)]), axis=1))


def target_logits(model, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits ``[len(target_ids), V]`` at the target positions, ``[B, K, V]`` at the video
    positions and the matching head's attention ``[B]`` from each row's match query to its key
    (:func:`~lmms_sttm.organism.matching.match_attention`; gradients reach projector and LLM)."""
    lm = model.model.language_model
    b = batch.tower.shape[0]
    rows = video_rows(model, batch.tower)  # [B, F*49, D]
    if batch.merge is not None:  # each row's STTM plan, in its own merge arithmetic
        rows = torch.stack([plan.carried(r) for plan, r in zip(batch.merge, rows, strict=True)])  # [B, K, D]
    elif batch.keep is not None:
        rows = rows[torch.arange(b)[:, None], batch.keep]  # [B, K, D]
    emb = lm.embed_tokens(batch.ids)
    s = batch.video_start
    emb = torch.cat([emb[:, :s], rows.to(emb.dtype), emb[:, s + rows.shape[1] :]], dim=1)
    with attention_input(lm) as seen:
        hidden = lm(inputs_embeds=emb, position_ids=batch.positions).last_hidden_state
    video = model.lm_head(hidden[:, s : s + rows.shape[1]])
    return (
        model.lm_head(hidden[batch.target_rows, batch.target_pos]),
        video,
        match_attention(lm, seen, batch.match),
    )


def video_rows(model, tower: torch.Tensor) -> torch.Tensor:
    """``tower [B, F, 169, C]`` through the projector and the 2x2 pooling: ``[B, F*49, D]``, the
    visual tokens the LLM sees in the evaluation prompt."""
    inner = model.model
    b, f = tower.shape[:2]
    proj = inner.multi_modal_projector(
        tower.flatten(0, 1).to(inner.multi_modal_projector.linear_1.weight.dtype)
    )
    return inner.apply_pooling(proj).reshape(b, f * 49, -1)


def merged(model, tower: torch.Tensor, fraction: float) -> tuple[torch.Tensor, list]:
    """STTM at exact retention ``fraction`` on each row's visual tokens (``tower [B, F, 169, C]``,
    projected and pooled, ``F x 7 x 7``): ``(keep [B, K], plans)``. The plans
    (:class:`~lmms_sttm.merging.reduction.Reduction`, trimmed to the rows' smallest count ``K``) are
    computed without gradients; :func:`target_logits` applies them (``plan.carried``: the merge's own
    arithmetic) to the rows it projects with gradients. ``keep`` holds each kept token's
    representative, strictly increasing: positions and video labels follow the representatives, as
    :func:`build_batch` does for :func:`thinned` subsets."""
    from lmms_sttm.merging.budget import sttm_exact, trim_to

    f = tower.shape[1]
    with torch.no_grad():
        rows = video_rows(model, tower).float()
    plans = [sttm_exact(r, (f, 7, 7), fraction)[0] for r in rows]
    k = min(plan.num_kept for plan in plans)
    plans = [trim_to(plan, k) for plan in plans]
    return torch.stack([plan.rep_index for plan in plans]), plans


def rng_for(seed: int, step: int) -> np.random.Generator:
    return np.random.default_rng([seed, step])
