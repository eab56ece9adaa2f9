"""Accuracy functions over per-question records, all in percent.

A record is the dict a task's ``process_results`` builds for one question (see
:mod:`lmms_sttm.tasks.common.benchmark`): at least ``correct`` (bool), ``parsed`` (bool),
``video_id``, ``task_type`` and ``duration``. Every function takes the full list gathered from
all ranks, so grouping that spans ranks (VNBench tries) is done here and nowhere else.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from loguru import logger


def accuracy(records: list[dict]) -> float:
    """Percent of records answered correctly (NaN for none)."""
    if not records:
        return float("nan")
    return 100.0 * sum(bool(r["correct"]) for r in records) / len(records)


def by_group(records: Iterable[dict], key: str) -> dict[str, list[dict]]:
    """Records grouped by ``str(record[key])``, groups in sorted order."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        groups[str(r[key])].append(r)
    return dict(sorted(groups.items()))


def accuracy_by(records: list[dict], key: str) -> dict[str, float]:
    """Accuracy per value of ``key``."""
    return {name: accuracy(group) for name, group in by_group(records, key).items()}


def macro_accuracy(records: list[dict], key: str = "task_type") -> float:
    """Mean of the per-``key`` accuracies (MLVU's official M-Avg over task types)."""
    per = accuracy_by(records, key)
    return sum(per.values()) / len(per) if per else float("nan")


def unparsed_count(records: list[dict]) -> int:
    """How many answers the parser could not read."""
    return sum(not r["parsed"] for r in records)


def circular_accuracy_by_type(
    records: list[dict], tries: int = 4, item_key: str = "video_id"
) -> dict[str, float]:
    """VNBench's official metric per task type: an item counts only if all its ``tries`` are right.

    Items are the records sharing ``(task_type, item_key)``; an item with fewer than ``tries``
    records (e.g. under ``--limit``) cannot be all right and counts as wrong, as in the
    official scorer; such items are reported in the log.
    """
    items: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in records:
        items[(str(r["task_type"]), str(r[item_key]))].append(r)
    incomplete = [k for k, v in items.items() if len(v) != tries]
    if incomplete:
        logger.warning(
            f"circular accuracy: {len(incomplete)} of {len(items)} items do not have exactly {tries} tries "
            f"(e.g. {incomplete[:3]}); they count as wrong"
        )
    right: dict[str, list[bool]] = defaultdict(list)
    for (task_type, _), group in items.items():
        right[task_type].append(len(group) == tries and all(r["correct"] for r in group))
    return {t: 100.0 * sum(v) / len(v) for t, v in sorted(right.items())}


def circular_accuracy(records: list[dict], tries: int = 4, item_key: str = "video_id") -> float:
    """Mean over task types of :func:`circular_accuracy_by_type` (VNBench's official overall)."""
    per = circular_accuracy_by_type(records, tries, item_key)
    return sum(per.values()) / len(per) if per else float("nan")
