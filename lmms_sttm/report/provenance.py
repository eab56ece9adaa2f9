"""Where each number came from: one line per lmms-eval run (version, settings, command, date)."""

from __future__ import annotations

from lmms_sttm.report.runs import Run
from lmms_sttm.report.table import MISSING, Table


def format_date(stamp: str) -> str:
    """``20261124_121510`` -> ``2026-11-24 12:15:10``; other text unchanged."""
    if len(stamp) == 15 and stamp[8] == "_" and stamp.replace("_", "").isdigit():
        return f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]} {stamp[9:11]}:{stamp[11:13]}:{stamp[13:15]}"
    return stamp


def run_records(runs: list[Run]) -> list[dict]:
    return [
        {
            "results_file": str(r.path),
            "date": format_date(r.date),
            "lmms_eval_version": r.lmms_eval_version,
            "git_hash": r.git_hash or "",
            "model": r.model,
            "model_args": r.model_args_text,
            "tasks": " ".join(sorted(r.tasks)),
            "limit": "" if r.limit is None else str(r.limit),
            "eval_seconds": r.eval_seconds,
            "stats_dir": str(r.stats_dir) if r.stats_dir else "",
            "failed": sum(len(t.failures) for t in r.tasks.values()),
            "command": r.command,
        }
        for r in runs
    ]


def runs_table(records: list[dict]) -> Table:
    headers = [
        "Date",
        "lmms-eval",
        "Model",
        "model_args",
        "Tasks",
        "Limit",
        "Failed",
        "Eval (s)",
        "Command",
        "Results file",
    ]
    table = Table("Runs (provenance)", headers)
    for r in records:
        seconds = MISSING if r["eval_seconds"] is None else f"{r['eval_seconds']:.0f}"
        table.rows.append(
            [
                r["date"],
                r["lmms_eval_version"],
                r["model"],
                r["model_args"],
                r["tasks"],
                r["limit"] or MISSING,
                str(r["failed"]),
                seconds,
                r["command"],
                r["results_file"],
            ]  # fmt: skip
        )
    table.notes = ["Dates are lmms-eval's timestamps (its --timezone, Asia/Singapore by default)."]
    return table
