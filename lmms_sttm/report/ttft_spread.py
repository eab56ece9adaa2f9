"""How noisy an R.TTFT is: the paired per-question prefill times of a run and its unreduced run.

For the questions whose video prefix both runs prefilled (``prefix_reused`` false, as the
leaderboard's TTFT), ``spread`` gives the ratio of the mean prefill times (the leaderboard's
R.TTFT on one benchmark), the ratio of the medians, an interval of the ratio of means from a
seeded bootstrap over those questions (resampled in pairs), the median merge time, and a
machine-speed control: the ratio of the median vision-tower times (``vision_ms``), the same work
in both runs (same frames, same tower), so 100 means both runs had the same machine speed. The
interval covers the question-to-question spread within the two runs; a machine that is slower
for a whole run (a shared host) shifts both ends, which the control shows.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass
from pathlib import Path

from lmms_sttm.models.stats import deduplicate
from lmms_sttm.report.jsonl import read_jsonl

RESAMPLES = 2000


@dataclass(frozen=True)
class Spread:
    """R.TTFT of one run against its reference over ``questions`` paired questions (percent)."""

    questions: int
    ratio_of_means: float
    ratio_of_medians: float
    low: float
    high: float
    median_ms: float
    reference_median_ms: float
    median_merge_ms: float | None
    vision_ratio: float | None


def cold_prefills(stats_dir: Path) -> tuple[dict, dict, dict]:
    """``{(task, doc_id): ms}`` of prefill, merge and vision tower, for the questions that prefilled their video."""
    records = deduplicate([r for path in sorted(stats_dir.glob("*_rank*.jsonl")) for r in read_jsonl(path)])
    return cold_times(records)


def cold_times(records: list[dict]) -> tuple[dict, dict, dict]:
    """:func:`cold_prefills` of statistics records already read (one record per question)."""
    prefill, merge, vision = {}, {}, {}
    for r in records:
        if (
            r.get("error") is None
            and not r.get("prefix_reused")
            and isinstance(r.get("prefill_ms"), (int, float))
        ):
            key = (r.get("task"), r.get("doc_id"))
            prefill[key] = float(r["prefill_ms"])
            if isinstance(r.get("merge_ms"), (int, float)):
                merge[key] = float(r["merge_ms"])
            if isinstance(r.get("vision_ms"), (int, float)) and r["vision_ms"] > 0:
                vision[key] = float(r["vision_ms"])
    return prefill, merge, vision


def spread(stats_dir: Path, reference_dir: Path, level: float = 0.9, seed: int = 0) -> Spread | None:
    """The spread of one run's R.TTFT against the run in ``reference_dir``; ``None`` without paired questions.

    Both directories hold per-rank statistics files (``<model>_rank<r>.jsonl``).
    """
    return spread_of(cold_prefills(stats_dir), cold_prefills(reference_dir), level, seed)


def spread_of(row: tuple[dict, dict, dict], reference: tuple[dict, dict, dict], level: float = 0.9,
              seed: int = 0) -> Spread | None:  # fmt: skip
    """:func:`spread` from :func:`cold_times` of both sides.

    With several tasks (benchmarks), R.TTFT is the mean over tasks of each task's ratio of mean
    prefill times (the leaderboard's R.TTFT), and each bootstrap resample draws pairs within
    each task; with one task this is the plain ratio of means.
    """
    times, merge, vision = row
    ref, _, ref_vision = reference
    keys = sorted(set(times) & set(ref), key=repr)
    if not keys:
        return None
    by_task: dict = {}
    for k in keys:
        by_task.setdefault(k[0], []).append(k)
    strata = [([times[k] for k in ks], [ref[k] for k in ks]) for ks in by_task.values()]

    def ratio(pairs) -> float:
        return sum(100.0 * sum(a) / sum(b) for a, b in pairs) / len(pairs)

    rng = random.Random(seed)
    ratios = []
    for _ in range(RESAMPLES):
        drawn = []
        for a, b in strata:
            pick = [rng.randrange(len(a)) for _ in a]
            drawn.append(([a[i] for i in pick], [b[i] for i in pick]))
        ratios.append(ratio(drawn))
    ratios.sort()
    tail = (1.0 - level) / 2
    a, b = [times[k] for k in keys], [ref[k] for k in keys]
    merges = [merge[k] for k in keys if k in merge]
    seen = [k for k in keys if k in vision and k in ref_vision]
    vision_ratio = None
    if seen:
        vision_ratio = (
            100.0
            * statistics.median(vision[k] for k in seen)
            / statistics.median(ref_vision[k] for k in seen)
        )
    return Spread(
        questions=len(keys),
        ratio_of_means=ratio(strata),
        ratio_of_medians=100.0 * statistics.median(a) / statistics.median(b),
        low=ratios[int(tail * (RESAMPLES - 1))],
        high=ratios[int((1.0 - tail) * (RESAMPLES - 1))],
        median_ms=statistics.median(a),
        reference_median_ms=statistics.median(b),
        median_merge_ms=statistics.median(merges) if merges else None,
        vision_ratio=vision_ratio,
    )
