"""Accuracy per duration, task type, ... from the samples logs (``--breakdowns``).

The benchmark tasks write each question's fields into the samples log (``duration``,
``task_type``, and for Video-MME ``domain`` and ``sub_category``) with ``correct``; one table per
(benchmark, field) gives each row's accuracy per value, with the question count.
"""

from __future__ import annotations

from lmms_sttm.report.benchmarks import order_key
from lmms_sttm.report.rows import Row
from lmms_sttm.report.table import MISSING, Table

FIELDS = ("duration", "task_type", "domain", "sub_category")
_DURATION_ORDER = ("short", "medium", "long")


def score(sample: dict) -> float | None:
    """100 or 0 for a scored sample (``correct``, else the ``sttm_acc`` score), ``None`` otherwise."""
    if isinstance(sample.get("correct"), bool):
        return 100.0 if sample["correct"] else 0.0
    value = sample.get("sttm_acc")
    if isinstance(value, dict):
        value = value.get("score")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _order(values: set) -> list:
    if values <= set(_DURATION_ORDER):
        return [v for v in _DURATION_ORDER if v in values]
    try:
        return sorted(values, key=float)
    except (TypeError, ValueError):
        return sorted(values, key=str)


def breakdown_records(rows: list[Row]) -> list[dict]:
    """``{row label, benchmark, field, value, questions, acc}`` for every group found."""
    out = []
    for row in rows:
        for task in sorted(row.tasks.values(), key=lambda t: order_key(t.column.key)):
            samples = task.samples or []
            for field in FIELDS:
                groups: dict = {}
                for s in samples:
                    s = (
                        {**s["sttm_acc"], **s} if isinstance(s.get("sttm_acc"), dict) else s
                    )  # record in sttm_acc
                    v = s.get(field)
                    sc = score(s)
                    if v is None or sc is None or isinstance(v, (dict, list)):
                        continue
                    groups.setdefault(v, []).append(sc)
                for value in _order(set(groups)):
                    scores = groups[value]
                    out.append(
                        {
                            "row": row.label,
                            "benchmark": task.column.label,
                            "field": field,
                            "value": value,
                            "questions": len(scores),
                            "acc": sum(scores) / len(scores),
                        }
                    )
    return out


def breakdown_tables(records: list[dict]) -> list[Table]:
    """One table per (benchmark, field): a line per row, a column per value: ``acc (n)``."""
    tables = []
    keys = list(dict.fromkeys((r["benchmark"], r["field"]) for r in records))
    for bench, field in keys:
        part = [r for r in records if (r["benchmark"], r["field"]) == (bench, field)]
        values = list(dict.fromkeys(r["value"] for r in part))
        table = Table(f"{bench}: accuracy by {field}", ["Row", *[str(v) for v in values]])
        for label in dict.fromkeys(r["row"] for r in part):
            cells = {r["value"]: r for r in part if r["row"] == label}
            table.rows.append(
                [
                    label,
                    *[
                        f"{c['acc']:.1f} ({c['questions']})" if (c := cells.get(v)) else MISSING
                        for v in values
                    ],
                ]
            )
        table.notes = ["Accuracy in percent (questions)."]
        tables.append(table)
    return tables
