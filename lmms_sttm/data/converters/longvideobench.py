"""LongVideoBench: ``lvb_val.json`` / ``lvb_test_wo_gt.json`` -> ``lvb_val_v2.json`` / ``lvb_test_v2.json``.

Per record: ``video_id`` -> ``videoID``, ``id`` -> ``question_id``, ``duration_group`` ->
``duration``, ``question_category`` -> ``task_type``, ``candidates`` -> ``options``,
``correct_choice`` -> ``answer`` (validation only; a 0-based int). Everything else is dropped
(subtitles, exact durations, ...). For a video id containing "@" (TikTok user handles), both ids
keep only the text after their last "-".
"""

from __future__ import annotations

from pathlib import Path

from lmms_sttm.data.converters.common import ConversionError, read_json, require_fields

NAME = "longvideobench"
DEFAULT_SOURCE = "longvideobench/LongVideoBench"
HUB_PATTERNS = ["lvb_val.json", "lvb_test_wo_gt.json"]
VAL_OUTPUT = "lvb_val_v2.json"
TEST_OUTPUT = "lvb_test_v2.json"
NEEDS_SECONDS = False
_FIELDS = ("video_id", "id", "duration_group", "question_category", "question", "candidates")


def load(source: Path) -> dict[str, list[dict]]:
    """``{"val": records, "test": records}`` (either may be absent) from a file or a folder.

    A single file counts as the validation split when its records carry ``correct_choice``.
    """
    if source.is_file():
        records = _read(source)
        return {"val" if all("correct_choice" in r for r in records) else "test": records}
    if not source.is_dir():
        raise ConversionError(f"source not found: {source}")
    found = {
        split: _read(path)
        for split, name in (("val", "lvb_val.json"), ("test", "lvb_test_wo_gt.json"))
        for path in sorted(source.rglob(name))[:1]
    }
    if not found:
        raise ConversionError(f"neither lvb_val.json nor lvb_test_wo_gt.json under {source}")
    return found


def _read(path: Path) -> list[dict]:
    records = read_json(path)
    if not isinstance(records, list):
        raise ConversionError(f"{path} should hold a JSON list")
    require_fields(records, _FIELDS, str(path))
    return records


def _short_id(video_id: str, value: str) -> str:
    return value.split("-")[-1] if "@" in video_id else value


def convert_records(records: list[dict]) -> list[dict]:
    out = []
    for r in records:
        rec = {
            "videoID": _short_id(r["video_id"], r["video_id"]),
            "question_id": _short_id(r["video_id"], r["id"]),
            "duration": r["duration_group"],
            "task_type": r["question_category"],
            "question": r["question"],
            "options": list(r["candidates"]),
        }
        if "correct_choice" in r:
            rec["answer"] = int(r["correct_choice"])
        out.append(rec)
    return out


def convert(splits: dict[str, list[dict]], seconds=None) -> dict[str, list[dict]]:
    names = {"val": VAL_OUTPUT, "test": TEST_OUTPUT}
    return {names[split]: convert_records(records) for split, records in splits.items()}
