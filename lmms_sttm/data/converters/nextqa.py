"""NExT-QA multiple choice, test split: ``test.csv`` (GitHub) or ``MC/test-*.parquet`` (``lmms-lab/NExTQA``)
-> ``MC_test_v2.json``.

Per row: ``video_id = str(video)``, ``question_id = <video>_<qid>``, ``options = [a0..a4]``,
``answer`` = the letter of the 0-based index, ``type`` -> ``task_type``; ``video_second`` is the
video's length and ``duration`` its bucket. ``frame_count``, ``width``, ``height`` are dropped.
"""

from __future__ import annotations

from pathlib import Path

from lmms_sttm.data.converters.common import LETTERS, ConversionError, duration_bucket, find_one

NAME = "nextqa"
DEFAULT_SOURCE = "lmms-lab/NExTQA"
HUB_PATTERNS = ["MC/test-*.parquet"]
OUTPUT = "MC_test_v2.json"
NEEDS_SECONDS = True
COLUMNS = ("video", "frame_count", "question", "answer", "qid", "type", "a0", "a1", "a2", "a3", "a4")
ESTIMATE_FPS = 30.0


def load(source: Path) -> list[dict]:
    """The test rows from ``test.csv``, the MC test parquet, or a folder holding one of them."""
    import pandas as pd

    path = find_one(source, ["test.csv", "test-*.parquet"])
    if path.suffix == ".csv":
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    elif path.suffix == ".parquet":
        frame = pd.read_parquet(path)
    else:
        raise ConversionError(f"NExT-QA source should be .csv or .parquet, got {path}")
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ConversionError(f"{path} lacks the columns {missing} (has {list(frame.columns)})")
    return frame.to_dict(orient="records")


def video_stems(rows: list[dict]) -> list[str]:
    return [str(r["video"]) for r in rows]


def estimated_seconds(rows: list[dict]) -> dict[str, float]:
    """Lengths without the videos: frame_count / 30 (159 of 8,564 buckets differ from the resized videos)."""
    return {str(r["video"]): int(r["frame_count"]) / ESTIMATE_FPS for r in rows}


def convert(rows: list[dict], seconds: dict[str, float]) -> dict[str, list[dict]]:
    """``{OUTPUT: v2 records}``; ``seconds`` maps each video id to its length."""
    out = []
    for r in rows:
        vid = str(r["video"])
        out.append(
            {
                "video_id": vid,
                "question_id": f"{vid}_{r['qid']}",
                "question": r["question"],
                "answer": LETTERS[int(r["answer"])],
                "options": [r[f"a{i}"] for i in range(5)],
                "task_type": r["type"],
                "duration": duration_bucket(seconds[vid]),
                "video_second": seconds[vid],
            }
        )
    return {OUTPUT: out}
