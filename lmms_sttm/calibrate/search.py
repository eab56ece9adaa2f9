"""One STTM threshold pair whose MEAN retention over a sample of videos hits a target.

The pair moves along the ray the exact-budget search uses (``merging/budget.py``): from
``(1, 1)`` (nothing merges but identical tokens) through a reference pair ``direction``
(default the paper's LLaVA-Video-7B 30% VideoMME pair ``(0.80, 0.50)``), ``tau = 1 - lam * d``
with ``d = (1 - direction) / max(1 - direction)``, so ``tau_s`` keeps the paper's ratio to ``tau_t``.
``tau_t`` is held at ``MIN_TAU_T`` once the ray would take it to 0 (``tau_t <= 0`` switches temporal
merging off and keeps *more* tokens), while ``tau_s`` goes on down to -1 at ``lam_max``. Each
pair is rounded to ``STEP`` (the value written to the file is the value counted).

Retention falls as ``lam`` grows (STTM keeps fewer tokens at lower thresholds), so the search
bisects ``lam`` on ``[0, lam_max]``: it stops at the first pair whose mean retention is within
``tol / 2`` of the target, or when the bracket is narrower than one threshold step (the mean
jumps over the target there: few tokens, or videos that merge whole components at once); the
result is the evaluated pair closest to the target, flagged ``within_tolerance`` when it is within
``tol``. Each evaluation is a few vector operations per video (``sttm_counts.SttmCounts``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from lmms_sttm.merging.budget import DEFAULT_DIRECTION, MIN_TAU_T

STEP = 1e-4  # thresholds are rounded to 4 decimals
MAX_STEPS = 40


@dataclass(frozen=True)
class Counted:
    """One video for the search: ``count(tau_s, tau_t) -> kept tokens`` out of ``tokens``."""

    count: Callable[[float, float], int]
    tokens: int


@dataclass
class Point:
    """One evaluated pair: thresholds, mean retention, per-video retention."""

    tau_s: float
    tau_t: float
    mean: float
    per_video: list[float]


@dataclass
class Calibration:
    """The search's answer for one target: the closest pair and every pair it evaluated."""

    retention: float
    tolerance: float
    best: Point
    trace: list[Point] = field(default_factory=list)

    @property
    def within_tolerance(self) -> bool:
        return abs(self.best.mean - self.retention) <= self.tolerance + 1e-12

    def as_dict(self) -> dict:
        per = self.best.per_video
        mean = self.best.mean
        spread = (sum((r - mean) ** 2 for r in per) / len(per)) ** 0.5
        return {
            "retention": self.retention,
            "tau_s": self.best.tau_s,
            "tau_t": self.best.tau_t,
            "reached": round(mean, 6),
            "within_tolerance": self.within_tolerance,
            "per_video": [round(r, 6) for r in per],
            "per_video_min": round(min(per), 6),
            "per_video_max": round(max(per), 6),
            "per_video_std": round(spread, 6),
            "trace_size": len(self.trace),
            "trace": [[p.tau_s, p.tau_t, round(p.mean, 6)] for p in self.trace],
        }


def ray(direction: tuple[float, float] = DEFAULT_DIRECTION) -> tuple[tuple[float, float], float]:
    """``((d_s, d_t), lam_max)``: the unit direction (larger component 1) and where ``tau_s`` reaches -1."""
    d_s, d_t = (1.0 - direction[0]), (1.0 - direction[1])
    scale = max(d_s, d_t)
    if not all(0 < v < 1 for v in direction):
        raise ValueError(f"direction {tuple(direction)} must be a threshold pair in (0, 1)")
    return (d_s / scale, d_t / scale), 2.0 / (d_s / scale)


def pair_at(lam: float, unit: tuple[float, float]) -> tuple[float, float]:
    """``(tau_s, tau_t)`` at ``lam`` on the ray, rounded to ``STEP`` (``tau_t`` held at ``MIN_TAU_T``)."""
    tau_s = max(-1.0, 1.0 - lam * unit[0])
    tau_t = max(MIN_TAU_T, 1.0 - lam * unit[1])
    return round(tau_s, 4), round(tau_t, 4)


def evaluate(videos: Sequence[Counted], tau_s: float, tau_t: float) -> Point:
    """Mean over ``videos`` of ``kept / tokens`` at one pair."""
    per = [v.count(tau_s, tau_t) / v.tokens for v in videos]
    return Point(tau_s, tau_t, sum(per) / len(per), per)


def search(
    videos: Sequence[Counted],
    retention: float,
    tol: float = 0.01,
    direction: tuple[float, float] = DEFAULT_DIRECTION,
    max_steps: int = MAX_STEPS,
) -> Calibration:
    """The pair on the ray whose mean retention over ``videos`` is closest to ``retention``."""
    if not videos:
        raise ValueError("no videos to calibrate on")
    if not 0 < retention < 1:
        raise ValueError(f"retention must be in (0, 1), got {retention}")
    unit, lam_max = ray(direction)
    lo, hi = 0.0, lam_max
    trace: list[Point] = []
    seen: dict[tuple[float, float], Point] = {}
    lam = max(1.0 - direction[0], 1.0 - direction[1])  # the reference pair itself first
    for _ in range(max_steps):
        pair = pair_at(lam, unit)
        if pair in seen:  # the bracket is inside one rounding step
            break
        point = seen[pair] = evaluate(videos, *pair)
        trace.append(point)
        if abs(point.mean - retention) <= 0.5 * tol:
            break
        lo, hi = (lam, hi) if point.mean > retention else (lo, lam)
        lam = 0.5 * (lo + hi)
    best = min(trace, key=lambda p: (abs(p.mean - retention), -p.mean))
    return Calibration(retention, tol, best, trace)
