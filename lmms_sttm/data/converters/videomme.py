"""Video-MME: the Hugging Face table (``lmms-lab/Video-MME``, config ``videomme``) -> ``videomme.json``.

STTM's file is that table written out as a JSON list, one flat object per question with the 11
columns below. The source may be the parquet file or such a flat JSON list.
"""

from __future__ import annotations

from pathlib import Path

from lmms_sttm.data.converters.common import ConversionError, find_one, read_json, require_fields

NAME = "videomme"
DEFAULT_SOURCE = "lmms-lab/Video-MME"
HUB_PATTERNS = ["videomme/test-*.parquet"]
OUTPUT = "videomme.json"
NEEDS_SECONDS = False
COLUMNS = (
    "video_id",
    "duration",
    "domain",
    "sub_category",
    "url",
    "videoID",
    "question_id",
    "task_type",
    "question",
    "options",
    "answer",
)


def load(source: Path) -> list[dict]:
    """The question rows from a parquet file, a flat JSON list, or a folder holding one of them."""
    path = find_one(source, ["test-*.parquet", "videomme.json"])
    if path.suffix == ".parquet":
        import pandas as pd

        rows = pd.read_parquet(path).to_dict(orient="records")
    elif path.suffix == ".json":
        rows = read_json(path)
    else:
        raise ConversionError(f"Video-MME source should be .parquet or .json, got {path}")
    if not isinstance(rows, list):
        raise ConversionError(f"{path} should hold a list of questions")
    require_fields(rows, COLUMNS, str(path))
    return rows


def convert(rows: list[dict], seconds=None) -> dict[str, list[dict]]:
    """``{OUTPUT: records}`` with exactly the 11 columns, options as a list of str."""
    out = []
    for row in rows:
        rec = {c: row[c] for c in COLUMNS}
        rec["options"] = [str(o) for o in row["options"]]
        out.append(rec)
    return {OUTPUT: out}
