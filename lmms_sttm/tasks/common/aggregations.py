"""Benchmark-independent lmms-eval aggregations (referenced from the task YAMLs by absolute name)."""

from __future__ import annotations


def mean_score(items: list[dict]) -> float:
    """Mean of the items' ``score`` (0 or 100 per question): accuracy in percent."""
    if not items:
        return float("nan")
    return sum(float(i["score"]) for i in items) / len(items)


def total(items: list[int]) -> int:
    """Sum of per-question counts (e.g. unparsed answers)."""
    return int(sum(items))


def mean_value(items: list[float]) -> float:
    """Mean of per-answer numbers (the efficiency metrics); NaN for none."""
    if not items:
        return float("nan")
    return sum(float(i) for i in items) / len(items)


def circular(items: list[dict]) -> float:
    """VNBench's circular accuracy over the records of one task type (an item = all 4 tries right)."""
    from lmms_sttm.tasks.common.metrics import circular_accuracy

    return circular_accuracy(items)
