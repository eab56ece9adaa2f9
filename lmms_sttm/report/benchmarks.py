"""Which benchmark column a task feeds, which metric is its accuracy, and the column order.

The task YAMLs under ``lmms_sttm/tasks`` report the paper's accuracy as ``sttm_acc`` (percent);
that is the default metric. :data:`METRIC` overrides it per task: ``None`` marks a task that is
not scored locally (EgoSchema's full set is scored by the authors' server from a submission).
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_METRIC = "sttm_acc"

#: task -> headline metric key in results.json (``None``: not scored locally)
METRIC: dict[str, str | None] = {"egoschema_sttm": None}


@dataclass(frozen=True)
class Column:
    """One benchmark column of the leaderboard.

    Attributes:
        key: column id (the paper's benchmark key, or the task name for other tasks).
        label: the column heading.
        paper: the paper benchmark it can be set beside (``None`` when the paper has no such column).
    """

    key: str
    label: str
    paper: str | None


#: the paper's column order (Tables 11 and 12)
PAPER_ORDER = ("vnbench", "videomme", "longvideobench", "mlvu", "egoschema", "nextqa")
PAPER_LABELS = {
    "vnbench": "VNBench",
    "videomme": "VideoMME",
    "longvideobench": "LongVideoBench",
    "mlvu": "MLVU",
    "egoschema": "EgoSchema",
    "nextqa": "NExT-QA",
}

_TASKS = {
    "vnbench_sttm": Column("vnbench", "VNBench", "vnbench"),
    "videomme_sttm": Column("videomme", "VideoMME", "videomme"),
    "longvideobench_sttm": Column("longvideobench", "LongVideoBench", "longvideobench"),
    "mlvu_sttm": Column("mlvu", "MLVU", "mlvu"),
    "egoschema_sttm": Column("egoschema", "EgoSchema", "egoschema"),
    # the 500-question subset with public answers: not the paper's full-set number
    "egoschema_subset_sttm": Column("egoschema_subset", "EgoSchema-500", None),
    "nextqa_sttm": Column("nextqa", "NExT-QA", "nextqa"),
}


def column_for(task: str) -> Column:
    """The column of ``task``; tasks outside the paper's suite get a column of their own."""
    if task in _TASKS:
        return _TASKS[task]
    return Column(task, task.removesuffix("_sttm"), None)


def metric_for(task: str, overrides: dict[str, str | None] | None = None) -> str | None:
    """The results.json metric (without the ``,none`` filter suffix) that is ``task``'s accuracy."""
    table = {**METRIC, **(overrides or {})}
    return table.get(task, DEFAULT_METRIC)


def column_order(columns: list[Column]) -> list[Column]:
    """Unique columns, the paper's benchmarks first in the paper's order, then the rest by name."""
    unique = {c.key: c for c in columns}
    return sorted(unique.values(), key=lambda c: order_key(c.key))


def order_key(key: str) -> tuple[int, str]:
    """Sort key of a column id: the paper's benchmarks in the paper's order, then by name."""
    return (PAPER_ORDER.index(key), "") if key in PAPER_ORDER else (len(PAPER_ORDER), key)
