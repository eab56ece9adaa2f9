"""Task functions of ``synthetic_needle_sttm`` (docs from :func:`lmms_sttm.data.synthetic.needle_task_docs`)."""

from __future__ import annotations

import re

from lmms_sttm.data.synthetic import ClipSpec, default_clip_dir, ensure_clip

_LETTER = re.compile(r"\b([A-D])\b")


def doc_to_visual(doc: dict) -> list[str]:
    """``[absolute clip path]``; the clip is generated from the doc's spec on first use."""
    path = default_clip_dir() / f"{doc['video_id']}.mp4"
    return [str(ensure_clip(ClipSpec(**doc["clip"]), path).resolve())]


def doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    kwargs = lmms_eval_specific_kwargs or {}
    lines = [
        "Select the best answer to the following multiple-choice question based on the video. "
        "Respond with only the letter (A, B, C, or D) of the correct option.",
        doc["question"],
        *(f"{letter}. {text}" for letter, text in zip("ABCD", doc["options"], strict=False)),
    ]
    return kwargs.get("pre_prompt", "") + "\n".join(lines) + kwargs.get("post_prompt", "")


def parse_letter(response: str) -> str:
    """The first standalone option letter A-D in ``response``, or "" (never a random guess)."""
    m = _LETTER.search(response.strip())
    return m.group(1) if m else ""


def process_results(doc: dict, results: list[str]) -> dict:
    return {"sttm_acc": 100.0 * (parse_letter(results[0]) == doc["answer"])}
