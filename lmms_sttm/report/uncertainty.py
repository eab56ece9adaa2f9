"""How sure each leaderboard number is: accuracy intervals, R.TTFT intervals and their speed control,
and rows whose kept share is far from their label.

- **Accuracy**: a 95% normal interval, accuracy ± 1.96 standard errors, the standard error being
  lmms-eval's clustered one where the task groups a video's questions (``cluster_key: video_id``:
  VNBench's 4 tries of one video are not independent), else its CLT one
  (:attr:`lmms_sttm.report.runs.TaskRun.stderr`). A row's Avg over k benchmarks: the mean's
  standard error sqrt(sum of squares) / k (benchmarks are independent samples).
- **R.TTFT**: a 90% bootstrap interval over the questions both runs prefilled their video for,
  resampled in pairs within each benchmark (:func:`lmms_sttm.report.ttft_spread.spread_of`), and
  the machine-speed control: 100 x the row's median vision-tower time / the unreduced run's, the
  same work in both runs, so a control far from 100 says the machine ran at another speed during
  one of the two runs and the R.TTFT is off by about that factor (the interval cannot show that).
- **Kept share vs label**: a row labelled with a budget (``budget=50``, ``retention=0.3``) whose
  mean kept share (R.NV) is more than max(5 points, a quarter of the label) away from it, e.g.
  the paper's STTM thresholds on a model they were not tuned for.
"""

from __future__ import annotations

import math

from lmms_sttm.report.relative import Relative
from lmms_sttm.report.rows import Row
from lmms_sttm.report.runs import TaskRun
from lmms_sttm.report.ttft_spread import Spread, cold_times, spread_of

Z95 = 1.959963984540054


def interval(value: float | None, stderr: float | None) -> tuple[float, float] | None:
    """``value ± 1.96 stderr`` clipped to 0..100 (percent), ``None`` without both."""
    if value is None or stderr is None:
        return None
    return max(0.0, value - Z95 * stderr), min(100.0, value + Z95 * stderr)


def mean_stderr(tasks: list[TaskRun]) -> float | None:
    """Standard error of the mean accuracy over ``tasks`` (``None`` when one lacks a standard error)."""
    errs = [t.stderr for t in tasks]
    if not errs or any(e is None for e in errs):
        return None
    return math.sqrt(sum(e * e for e in errs)) / len(errs)


def ttft_spread(row: Row, rel: Relative) -> Spread | None:
    """The R.TTFT interval and control of ``row`` against its reference, over its compared benchmarks."""
    if rel.reference is None:
        return None
    names = [n for n, b in rel.per_task.items() if b.r_ttft is not None]
    if not names:
        return None
    ours = [r for n in names for r in row.tasks[n].stats]
    theirs = [r for n in names for r in rel.reference.tasks[n].stats]
    return spread_of(cold_times(ours), cold_times(theirs))


def label_share(setting: dict[str, str]) -> float | None:
    """The kept share a row's label states, in percent (``budget=50`` -> 50, ``retention=0.3`` -> 30)."""
    if "retention" in setting:
        try:
            return 100.0 * float(setting["retention"])
        except ValueError:
            return None
    if "budget" in setting:
        try:
            return float(setting["budget"])
        except ValueError:
            return None
    return None


def far_from_label(r_nv: float | None, setting: dict[str, str]) -> str | None:
    """A note when the kept share is far from the label (see the module docstring), else ``None``."""
    target = label_share(setting)
    if r_nv is None or target is None:
        return None
    if abs(r_nv - target) <= max(5.0, target / 4):
        return None
    return f"keeps {r_nv:.1f}% of the visual tokens, far from its label's {target:g}%"
