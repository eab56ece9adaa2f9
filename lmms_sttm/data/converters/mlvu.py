"""MLVU dev set: the 7 multiple-choice task files (``1_plotQA.json`` ... ``7_topic_reasoning.json``)
-> ``MLVU_mcq_v2.json`` (the tasks concatenated in file order).

Per record: ``video_id = <file stem>-<video name without .mp4>`` (the videos folder holds
``<video_id>.mp4``); ``question_id = <video_id>-<k>`` with k counting that video's questions
from 1; ``answer`` = the letter of the answer text among ``candidates`` (-> ``options``);
``question_type`` -> ``task_type``; ``video_second`` is the video's length and ``duration`` its
bucket. Two data issues of the GitHub release are handled here (the Hugging Face release the
STTM authors used carries neither):

- ``7_topic_reasoning.json`` holds one empty record (no question, four empty candidates): dropped.
- ``2_needle.json`` records of ``needle_4.mp4`` and ``needle_5.mp4`` give the answer
  "Catching a flying drone quadcopter", which is not a candidate; STTM's file has the letter of
  the candidate "Catching the drone" (B and D). :data:`ANSWER_ERRATA` maps the one to the other.
  Any other answer that is not a candidate is an error.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from loguru import logger

from lmms_sttm.data.converters.common import (
    LETTERS,
    ConversionError,
    duration_bucket,
    find_one,
    read_json,
    require_fields,
)

NAME = "mlvu"
DEFAULT_SOURCE = "MLVU/MVLU"
TASK_FILES = (
    "1_plotQA",
    "2_needle",
    "3_ego",
    "4_count",
    "5_order",
    "6_anomaly_reco",
    "7_topic_reasoning",
)
HUB_PATTERNS = [f"*{stem}.json" for stem in TASK_FILES]
OUTPUT = "MLVU_mcq_v2.json"
NEEDS_SECONDS = True
ANSWER_ERRATA = {("2_needle", "Catching a flying drone quadcopter"): "Catching the drone"}


def load(source: Path) -> dict[str, list[dict]]:
    """``{task file stem: records}`` for the 7 files found under the folder ``source``."""
    if not source.is_dir():
        raise ConversionError(f"MLVU source must be the folder holding {[f + '.json' for f in TASK_FILES]}")
    files = {}
    for stem in TASK_FILES:
        path = find_one(source, [f"{stem}.json"])
        records = read_json(path)
        require_fields(
            records, ["video", "duration", "question", "candidates", "answer", "question_type"], str(path)
        )
        files[stem] = records
    return files


def _is_empty(rec: dict) -> bool:
    return not rec["question"] and not any(rec["candidates"])


def _kept(files: dict[str, list[dict]]):
    """``(file stem, record)`` pairs in output order, without empty records."""
    for stem in TASK_FILES:
        for i, rec in enumerate(files[stem]):
            if _is_empty(rec):
                logger.info(f"mlvu: dropping the empty record {stem}.json[{i}] ({rec['video']})")
                continue
            yield stem, rec


def video_id(stem: str, rec: dict) -> str:
    return f"{stem}-{rec['video'].removesuffix('.mp4')}"


def video_stems(files: dict[str, list[dict]]) -> list[str]:
    return [video_id(stem, rec) for stem, rec in _kept(files)]


def estimated_seconds(files: dict[str, list[dict]]) -> dict[str, float]:
    """Lengths without the videos: the official ``duration`` (within 1 s of measured; same buckets)."""
    return {video_id(stem, rec): float(rec["duration"]) for stem, rec in _kept(files)}


def answer_letter(stem: str, rec: dict) -> str:
    answer = rec["answer"]
    if answer not in rec["candidates"]:
        fixed = ANSWER_ERRATA.get((stem, answer))
        if fixed is None or fixed not in rec["candidates"]:
            raise ConversionError(
                f"mlvu {stem} {rec['video']}: answer {answer!r} is not one of {rec['candidates']}"
            )
        logger.info(f"mlvu {stem} {rec['video']}: answer {answer!r} taken as the candidate {fixed!r}")
        answer = fixed
    return LETTERS[rec["candidates"].index(answer)]


def convert(files: dict[str, list[dict]], seconds: dict[str, float]) -> dict[str, list[dict]]:
    """``{OUTPUT: v2 records}``; ``seconds`` maps each ``video_id`` to its length."""
    counter: Counter[str] = Counter()
    out = []
    for stem, rec in _kept(files):
        vid = video_id(stem, rec)
        counter[vid] += 1
        out.append(
            {
                "video_id": vid,
                "question_id": f"{vid}-{counter[vid]}",
                "question": rec["question"],
                "answer": answer_letter(stem, rec),
                "options": list(rec["candidates"]),
                "task_type": rec["question_type"],
                "duration": duration_bucket(seconds[vid]),
                "video_second": seconds[vid],
            }
        )
    return {OUTPUT: out}
