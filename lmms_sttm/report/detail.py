"""Per-benchmark detail: one line per (row, benchmark) with every measured and relative value."""

from __future__ import annotations

from lmms_sttm.report.benchmarks import order_key
from lmms_sttm.report.model_args import setting_label
from lmms_sttm.report.relative import Relative
from lmms_sttm.report.rows import Row
from lmms_sttm.report.table import MISSING, Table, num


def detail_records(rows: list[Row], rels: dict[tuple, Relative]) -> list[dict]:
    """Raw values per (row, task) for ``per_benchmark.csv`` and the detail table."""
    out = []
    for row in rows:
        rel = rels[row.key]
        for name, task in sorted(row.tasks.items(), key=lambda kv: order_key(kv[1].column.key)):
            m = row.measures.get(name)
            b = rel.per_task.get(name)
            reasons = b.reasons if b is not None else ([rel.reason] if rel.reason else [])
            out.append(
                {
                    "model": row.model,
                    "pretrained": row.pretrained,
                    "method": row.method,
                    "setting": setting_label(row.setting),
                    "task": name,
                    "benchmark": task.column.label,
                    "metric": task.metric or "",
                    "acc": task.accuracy,
                    "n_original": task.n_original,
                    "n_effective": task.n_effective,
                    "n_logged": len(task.samples) if task.samples is not None else None,
                    "answers": m.answers if m else None,
                    "failed": m.failed if m else None,
                    "nv": m.nv if m else None,
                    "visual_tokens": m.visual_tokens if m else None,
                    "retained_pct": m.retained_pct if m else None,
                    "ttft_s": m.ttft_s if m else None,
                    "ttft_questions": m.ttft_questions if m else None,
                    "ttft_all_s": m.ttft_all_s if m else None,
                    "frames": m.frames if m else None,
                    "r_acc": b.r_acc if b else None,
                    "r_ttft": b.r_ttft if b else None,
                    "r_nv": b.r_nv if b else None,
                    "relative_note": "; ".join(reasons),
                    "source": str(next(r.path for r in row.runs if task in r.tasks.values())),
                }
            )
    return out


def _int(v) -> str:
    return MISSING if v is None else str(v)


def detail_table(records: list[dict]) -> Table:
    headers = [
        "Model", "Method", "Setting", "Benchmark", "Acc", "Questions", "Failed", "NV", "Retained %",
        "TTFT (s)", "TTFT all (s)", "Frames", "R.Acc", "R.TTFT", "R.NV", "Relative note",
    ]  # fmt: skip
    table = Table("Per benchmark (our runs)", headers)
    for r in records:
        table.rows.append(
            [
                r["model"],
                r["method"],
                r["setting"],
                r["benchmark"],
                "unscored" if not r["metric"] else num(r["acc"]),
                _int(r["n_effective"]),
                _int(r["failed"]),
                num(r["nv"], 0),
                num(r["retained_pct"]),
                num(r["ttft_s"], 3),
                num(r["ttft_all_s"], 3),
                num(r["frames"], 1),
                num(r["r_acc"]),
                num(r["r_ttft"]),
                num(r["r_nv"]),
                r["relative_note"],
            ]  # fmt: skip
        )
    table.notes = [
        "TTFT: questions whose video prefix was prefilled for them, in a reduced row only those also "
        "prefilled in its unreduced run (the same questions as R.TTFT); TTFT all: every answer (a reused "
        "prefix prefills only the question).",
        "Retained %: mean over questions of 100 × kept / visual tokens (this is R.NV when the row has a reference).",
    ]
    return table
