"""Reading JSON Lines files with errors that name the file and line."""

from __future__ import annotations

import json
from pathlib import Path

from lmms_sttm.report.errors import ReportError


def read_jsonl(path: Path) -> list[dict]:
    """Every JSON object of ``path``, one per non-empty line."""
    records = []
    with path.open(encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ReportError(f"{path}:{i}: not a JSON line ({e.msg})") from e
            if not isinstance(record, dict):
                raise ReportError(f"{path}:{i}: expected a JSON object, got {type(record).__name__}")
            records.append(record)
    return records
