"""Where each number came from: one line per lmms-eval run (versions, device, settings, command, date).

The versions, this package's commit, the device, the thread count and the launcher's command line
come from the run's own record (``<stats_dir>/provenance_rank0.json``, written by the model at
start-up: :mod:`lmms_sttm.models.provenance`). lmms-eval's results file holds, under
``lmms_eval_version`` and ``git_hash``, the git commit of the directory it ran in, not its own
version: that is shown as ``cwd_commit``. A run without the record (made before it existed, or
by another model) has empty version cells and the command rebuilt from lmms-eval's arguments.
"""

from __future__ import annotations

from lmms_sttm.report.runs import Run
from lmms_sttm.report.table import MISSING, Table


def format_date(stamp: str) -> str:
    """``20261124_121510`` -> ``2026-11-24 12:15:10``; other text unchanged."""
    if len(stamp) == 15 and stamp[8] == "_" and stamp.replace("_", "").isdigit():
        return f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]} {stamp[9:11]}:{stamp[11:13]}:{stamp[13:15]}"
    return stamp


def _commit(prov: dict) -> str:
    commit = prov.get("lmms_sttm_commit")
    if not commit:
        return ""
    return commit[:12] + ("-dirty" if prov.get("lmms_sttm_dirty") else "")


def run_records(runs: list[Run]) -> list[dict]:
    out = []
    for r in runs:
        prov = r.provenance or {}
        ver = prov.get("versions") or {}
        threads = prov.get("torch_threads")
        out.append(
            {
                "results_file": str(r.path),
                "date": format_date(r.date),
                "lmms_eval_version": ver.get("lmms-eval") or "",
                "transformers_version": ver.get("transformers") or "",
                "torch_version": ver.get("torch") or "",
                "accelerate_version": ver.get("accelerate") or "",
                "lmms_sttm_version": ver.get("lmms-sttm") or "",
                "lmms_sttm_commit": _commit(prov),
                "device": prov.get("device") or "",
                "threads": "" if threads is None else str(threads),
                "processes": "" if prov.get("world_size") is None else str(prov["world_size"]),
                "cwd_commit": r.git_hash or "",
                "model": r.model,
                "model_args": r.model_args_text,
                "tasks": " ".join(sorted(r.tasks)),
                "limit": "" if r.limit is None else str(r.limit),
                "eval_seconds": r.eval_seconds,
                "stats_dir": str(r.stats_dir) if r.stats_dir else "",
                "failed": sum(len(t.failures) for t in r.tasks.values()),
                "command": prov.get("command") or r.command,
            }
        )
    return out


def runs_table(records: list[dict]) -> Table:
    headers = ["Date", "Versions", "lmms_sttm commit", "Device", "Threads", "Model", "model_args", "Tasks",
               "Limit", "Failed", "Eval (s)", "Command", "Results file"]  # fmt: skip
    table = Table("Runs (provenance)", headers)
    for r in records:
        seconds = MISSING if r["eval_seconds"] is None else f"{r['eval_seconds']:.0f}"
        versions = (
            f"lmms-eval {r['lmms_eval_version']}, transformers {r['transformers_version']}, torch "
            f"{r['torch_version']}, accelerate {r['accelerate_version']}, lmms_sttm {r['lmms_sttm_version']}"
            if r["lmms_eval_version"]
            else MISSING
        )
        threads = r["threads"] + (f" x {r['processes']} processes" if r["processes"] else "")
        table.rows.append(
            [
                r["date"],
                versions,
                r["lmms_sttm_commit"] or MISSING,
                r["device"] or MISSING,
                threads or MISSING,
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
    table.notes = [
        "Dates are lmms-eval's timestamps (its --timezone, Asia/Singapore by default).",
        "Versions, commit (-dirty: tracked code files differed from it), device, threads per process and the "
        "command as launched come from each run's provenance record; — : the run has none.",
    ]
    return table
