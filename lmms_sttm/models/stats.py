"""Per-answer statistics: a per-rank JSONL side file beside the lmms-eval results.

One line per answered (or failed) request: the settings that matter for comparison, visual tokens
before and after the reduction, times, whether the prefix was reused, and the failure reason if
any. The leaderboard reads these files; lmms-eval's own samples log carries the token counts.

The files are appended to, never emptied: a run resumed with ``--use_cache`` answers only the
questions the cache lacks, and the statistics of the earlier part must survive. A question
answered twice (a resumed run whose cache missed it) has two records; :func:`deduplicate` keeps
the latest per ``(model, task, doc_id)`` (doc ids name the same question on any world size, see
:mod:`lmms_sttm.tasks.common.sharding`).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def default_stats_dir(argv: list[str] | None = None) -> str | None:
    """``<--output_path>/sttm_stats`` of the running lmms-eval command line, else None."""
    argv = sys.argv if argv is None else argv
    for i, arg in enumerate(argv):
        if arg == "--output_path" and i + 1 < len(argv):
            return os.path.join(argv[i + 1], "sttm_stats")
        if arg.startswith("--output_path="):
            return os.path.join(arg.split("=", 1)[1], "sttm_stats")
    return None


class StatsWriter:
    """Appends JSON records to ``<dir>/<run_tag>_rank<r>.jsonl`` (no file without a directory; never emptied)."""

    def __init__(self, directory: str | None, run_tag: str, rank: int) -> None:
        self.path = Path(directory) / f"{run_tag}_rank{rank}.jsonl" if directory else None
        self.records: list[dict] = []
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict) -> None:
        self.records.append(record)
        if self.path is not None:
            with self.path.open("a") as f:
                f.write(json.dumps(record, sort_keys=True) + "\n")


def deduplicate(records: list[dict]) -> list[dict]:
    """One record per ``(model, task, doc_id)``: the latest by ``time`` (file order among equals).

    Records keep their first position; a later record of the same question replaces it there.
    """
    latest: dict[tuple, tuple[int, dict]] = {}
    for i, rec in enumerate(records):
        key = (rec.get("model"), rec.get("task"), rec.get("doc_id"))
        if key not in latest or float(rec.get("time") or 0) >= float(latest[key][1].get("time") or 0):
            latest[key] = (latest[key][0] if key in latest else i, rec)
    return [rec for _, rec in sorted(latest.values(), key=lambda item: item[0])]
