"""CSV files from raw records: empty cells for missing values, full precision for numbers."""

from __future__ import annotations

import csv
from pathlib import Path


def write_csv(path: Path, records: list[dict]) -> Path:
    """Write ``records`` (union of their keys as columns, first-seen order)."""
    columns = list(dict.fromkeys(k for r in records for k in r))
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        for r in records:
            writer.writerow({k: "" if v is None else v for k, v in r.items()})
    return path
