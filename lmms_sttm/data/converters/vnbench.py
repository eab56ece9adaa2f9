"""VNBench: the official ``VNBench-main-4try.json`` -> ``VNBench-main-4try_v2.json`` (STTM's schema).

Per record: ``video`` (a path) becomes ``videoID`` (its file stem) and is dropped with ``gt``;
``gt_option`` -> ``answer``, ``type`` -> ``task_type``; options get the letter prefix and a
trailing period (``"A. text."``); ``question_id = <videoID>_try<try>``; ``video_second`` is the
video's length and ``duration`` its bucket. Other fields (``needle_time``, ``length``, ``try``,
...) are kept. The task label is taken from ``type`` as is: for the ret_insert tasks it is the
opposite of the suffix of the video file name (a quirk of the official data).
"""

from __future__ import annotations

from pathlib import Path

from lmms_sttm.data.converters.common import (
    LETTERS,
    ConversionError,
    duration_bucket,
    find_one,
    read_json,
    require_fields,
)

NAME = "vnbench"
DEFAULT_SOURCE = "Joez1717/VNBench"
HUB_PATTERNS = ["*VNBench-main-4try.json"]
OFFICIAL_FILE = "VNBench-main-4try.json"
OUTPUT = "VNBench-main-4try_v2.json"
NEEDS_SECONDS = True
_RENAMES = {"gt_option": "answer", "type": "task_type"}
_DROPPED = ("video", "gt")


def load(source: Path) -> list[dict]:
    """The official records from ``source`` (the file, or a folder holding it)."""
    records = read_json(find_one(source, [OFFICIAL_FILE]))
    if not isinstance(records, list):
        raise ConversionError(f"{OFFICIAL_FILE} should hold a JSON list, got {type(records).__name__}")
    require_fields(records, ["video", "question", "options", "gt_option", "type", "try"], OFFICIAL_FILE)
    return records


def video_stem(record: dict) -> str:
    return record["video"].split("/")[-1].removesuffix(".mp4")


def video_stems(records: list[dict]) -> list[str]:
    return [video_stem(r) for r in records]


def estimated_seconds(records: list[dict]) -> dict[str, float]:
    """Lengths without the videos: the official ``length`` field (44 of 5,400 buckets differ from measured)."""
    return {video_stem(r): float(r["length"]) for r in records}


def convert(records: list[dict], seconds: dict[str, float]) -> dict[str, list[dict]]:
    """``{OUTPUT: v2 records}``; ``seconds`` maps each video stem to its length."""
    out = []
    for rec in records:
        new = {}
        for key, value in rec.items():
            if key in _DROPPED:
                continue
            if key == "options":
                value = [f"{LETTERS[i]}. {text}." for i, text in enumerate(value)]
            new[_RENAMES.get(key, key)] = value
        stem = video_stem(rec)
        new["videoID"] = stem
        new["question_id"] = f"{stem}_try{rec['try']}"
        new["video_second"] = seconds[stem]
        new["duration"] = duration_bucket(seconds[stem])
        out.append(new)
    return {OUTPUT: out}
