"""Exact budgets: keep ``R`` of each video's visual tokens (within ``tol``, default one point).

- ``sttm_exact``: per-video search over STTM's thresholds along a fixed direction
  ``(tau_s, tau_t) = (1 - lam * d_s, 1 - lam * d_t)`` (``d`` from a reference threshold pair, by
  default the paper's LLaVA-Video-7B 30% VideoMME pair (0.80, 0.50)), on ``log(lam)``, starting at
  the reference pair itself; retention falls as ``lam`` grows. ``tau_t`` is held at ``1e-3`` once
  the direction would take it to 0 (``tau_t <= 0`` switches temporal merging off, which keeps
  *more* tokens: the count would jump up), while ``tau_s`` goes on down to -1. The second call
  steps ``log(lam)`` by 5% towards the target, later calls follow the secant of ``log(kept)``
  through the last two calls, bisecting the bracket when the secant leaves it. The search stops
  once the kept count is within ``tol / 2`` of the target, or when the bracket is narrower than ``1e-4`` in ``log(lam)`` (a jump of the count: union
  of whole components); then the smallest plan above the target is trimmed. The kept counts come
  from ``sttm_counts.SttmCounts`` (every similarity computed once, a few vector operations per
  threshold pair), which also builds the plan of the pair the search settles on: the same pairs
  and plan as a full ``merge_video`` per pair, at a fraction of the cost.
- ``trim_to``: merges a plan's kept tokens further by bipartite soft matching (ToMe rounds on the
  kept features, weighted by patch counts) down to an exact count. Used as the last resort of
  every method whose own knob cannot reach the target.
- ``ExactBudget``: wraps any reducer (query-aware ones too), trims when it overshoots and raises
  when the result is still outside the tolerance.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from lmms_sttm.merging.groups import Grid, merge_kept
from lmms_sttm.merging.reduction import Reduction
from lmms_sttm.merging.sttm_counts import COUNT_OPTIONS, MERGE_OPTIONS, SttmCounts
from lmms_sttm.merging.threads import bookkeeping_threads
from lmms_sttm.merging.tome import bipartite_assign

DEFAULT_DIRECTION = (0.80, 0.50)
FIRST_STEP = 0.05  # log(lam) step of the search's second call
MIN_TAU_T = 1e-3  # tau_t <= 0 switches temporal merging off (more tokens): the search stops above


def target_count(retention: float, n: int) -> int:
    """``round(R * N)`` clipped to ``[1, N]``."""
    if not 0 < retention <= 1:
        raise ValueError(f"retention must be in (0, 1], got {retention}")
    return max(1, min(n, round(retention * n)))


def trim_to(plan: Reduction, target: int) -> Reduction:
    """``plan`` with at most ``target`` kept tokens (unchanged if it already has no more)."""
    if plan.num_kept <= target:
        return plan
    return merge_kept(plan, bipartite_assign(plan.features, plan.num_patches, target))


def check_budget(plan: Reduction, retention: float, tol: float, who: str) -> None:
    """Raises ``ValueError`` unless ``|plan.ratio - retention| <= tol``."""
    if abs(plan.ratio - retention) > tol + 1e-12:
        raise ValueError(
            f"{who} kept {plan.num_kept}/{plan.num_original} = {plan.ratio:.4f} of the tokens, "
            f"outside retention {retention} +- {tol}"
        )


def settle(plan: Reduction, retention: float, tol: float, info, began: float, who: str) -> Reduction:
    """An exact-budget plan's last step: trims a plan keeping more than ``retention + tol / 2`` to
    ``round(R * N)`` tokens, checks the budget, records the trim and the seconds since ``began``."""
    if plan.ratio > retention + 0.5 * tol:
        target = target_count(retention, plan.num_original)
        info.trimmed = plan.num_kept - target
        plan = trim_to(plan, target)
    check_budget(plan, retention, tol, who)
    info.seconds = time.perf_counter() - began
    return plan


@dataclass
class SearchInfo:
    """Cost of one exact-budget call: threshold pairs counted, trimmed tokens, final thresholds, seconds."""

    calls: int = 0
    trimmed: int = 0
    tau_s: float | None = None
    tau_t: float | None = None
    seconds: float = 0.0


def _search(
    count,
    n: int,
    target: int,
    tol: float,
    direction: tuple[float, float],
    max_calls: int,
    info: SearchInfo,
) -> tuple[float, float, int] | None:
    """The threshold pair the search settles on and its kept count (``count(tau_s, tau_t) -> int``).

    Either the first pair within ``tol / 2`` of the target or, when the search ends without one,
    the pair of the smallest count above the target (``None`` when every count fell below it).
    """
    d_s, d_t = (1.0 - direction[0]), (1.0 - direction[1])
    scale = max(d_s, d_t)
    if not 0 < scale < 1:
        raise ValueError(f"exact-budget direction {direction} must have thresholds in (0, 1)")
    d_s, d_t = d_s / scale, d_t / scale
    above: tuple[float, float, int] | None = None  # smallest count >= target, with its taus
    close = 0.5 * tol * n
    lo, hi = math.log(1e-6), math.log(2.0 / max(min(d_s, d_t), 1e-3))  # bracket on mu
    goal = math.log(target)
    points: list[tuple[float, float]] = []  # evaluated (mu, log kept)
    mu = math.log(scale)  # the reference pair itself
    for _ in range(max_calls):
        lam = math.exp(mu)
        tau_s, tau_t = 1.0 - lam * d_s, max(MIN_TAU_T, 1.0 - lam * d_t)
        k = count(tau_s, tau_t)
        info.calls += 1
        if abs(k - target) <= close:
            return tau_s, tau_t, k
        if k >= target and (above is None or k < above[2]):
            above = (tau_s, tau_t, k)
        lo, hi = (mu, hi) if k > target else (lo, mu)
        points.append((mu, math.log(k)))
        if hi - lo < 1e-4:
            break
        if len(points) == 1:  # a small step towards the target gives the first slope
            mu = mu + (FIRST_STEP if k > target else -FIRST_STEP)
        else:
            (m0, f0), (m1, f1) = points[-2:]
            mu = m1 + (goal - f1) * (m1 - m0) / (f1 - f0) if f1 != f0 else math.nan
        if not lo < mu < hi:  # also NaN: a flat secant
            mu = 0.5 * (lo + hi)
    return above


def sttm_exact(
    hidden: torch.Tensor,
    grid: Grid,
    retention: float,
    tol: float = 0.01,
    direction: tuple[float, float] = DEFAULT_DIRECTION,
    root_level: int = 1,
    max_calls: int = 14,
    merge_options: dict | None = None,
) -> tuple[Reduction, SearchInfo]:
    """STTM on ``hidden [T*H*W, C]`` keeping ``retention`` of the tokens; returns the plan and its cost.

    ``merge_options``: further keyword arguments of ``merge_video`` (``union_find``, ``merge_dtype``,
    ``best_partner``, ...). The search counts kept tokens with ``SttmCounts`` (similarities computed
    once) and takes the plan of the pair it settles on from the same decisions: ``merge_video``'s
    plan at the reported thresholds.
    """
    from lmms_sttm.merging.sttm import check_inputs, pyramid_features

    began = time.perf_counter()
    t, h, w = grid
    n = t * h * w
    x = hidden.reshape(t, h, w, hidden.shape[-1])
    target = target_count(retention, n)
    options = dict(merge_options or {})
    unknown = sorted(set(options) - set(MERGE_OPTIONS))
    if unknown:
        raise TypeError(f"unknown merge_options {unknown}; accepted: {list(MERGE_OPTIONS)}")
    check_inputs(
        x, 1.0, 1.0, root_level, options.get("union_find", "authors"), options.get("merge_dtype", "input")
    )
    info = SearchInfo()
    with torch.no_grad(), bookkeeping_threads(x.device):
        pyr, _, feats, norms = pyramid_features(x, root_level, options.get("merge_dtype", "input"))
        counted = {k: v for k, v in options.items() if k in COUNT_OPTIONS}
        counts = SttmCounts(pyr, feats, norms, dtype=x.dtype, **counted)
        found = _search(counts.count, n, target, tol, direction, max_calls, info)
        if found is None:
            plan, info.tau_s, info.tau_t = Reduction.identity(x), 1.0, 1.0
        else:
            plan = counts.plan(found[0], found[1], weighted=options.get("weighted", False))
            info.tau_s, info.tau_t = found[0], found[1]
    if abs(plan.num_kept - target) > 0.5 * tol * n:  # the search ended outside the band, above it
        info.trimmed = max(0, plan.num_kept - target)
        plan = trim_to(plan, target)
    info.seconds = time.perf_counter() - began
    return plan, info


class SttmExactReducer:
    """Engine reducer: STTM at an exact per-video retention (``sttm_exact``); ``last`` holds the cost."""

    needs_attention = False

    def __init__(
        self,
        retention: float,
        tol: float = 0.01,
        direction: tuple[float, float] = DEFAULT_DIRECTION,
        root_level: int = 1,
        merge_options: dict | None = None,
    ) -> None:
        target_count(retention, 1)
        self.retention, self.tol = float(retention), float(tol)
        self.direction, self.root_level = tuple(direction), int(root_level)
        self.merge_options = dict(merge_options or {})
        self.last: SearchInfo | None = None

    def __call__(self, hidden: torch.Tensor, grid: Grid) -> Reduction:
        plan, self.last = sttm_exact(
            hidden,
            grid,
            self.retention,
            self.tol,
            self.direction,
            self.root_level,
            merge_options=self.merge_options,
        )
        check_budget(plan, self.retention, self.tol, repr(self))
        return plan

    def __repr__(self) -> str:
        return f"SttmExactReducer(retention={self.retention}, tol={self.tol}, direction={self.direction})"


class ExactBudget:
    """Wraps a reducer whose own knob is set near ``retention``: trims overshoots, checks the result.

    Query-aware reducers stay query-aware (``needs_attention`` and ``context`` are passed through).
    """

    def __init__(self, reducer, retention: float, tol: float = 0.01) -> None:
        target_count(retention, 1)
        self.reducer, self.retention, self.tol = reducer, float(retention), float(tol)
        self.needs_attention = bool(getattr(reducer, "needs_attention", False))
        self.last: SearchInfo | None = None

    def __call__(self, hidden: torch.Tensor, grid: Grid, context=None) -> Reduction:
        began = time.perf_counter()
        extra = {"context": context} if self.needs_attention else {}
        plan = self.reducer(hidden, grid, **extra)
        self.last = SearchInfo(calls=1)
        return settle(plan, self.retention, self.tol, self.last, began, repr(self))

    def __repr__(self) -> str:
        return f"ExactBudget({self.reducer!r}, retention={self.retention}, tol={self.tol})"


class KnobSearch:
    """Exact budget for a method with a monotone knob: per video, bisects the knob until the plan
    keeps ``retention`` of the tokens within ``tol / 2``, then trims an overshoot (``trim_to``).

    ``make(value) -> reducer`` builds the method at one knob value; ``knob_range = (lo, hi)``;
    ``increases``: a larger value keeps more tokens. The method at ``hi`` says whether the search
    is query-aware (``needs_attention``). At most ``max_calls`` plans per video; ``last`` holds the
    cost. Query-aware reducers get the same ``context`` on every call.
    """

    def __init__(
        self,
        make,
        knob_range: tuple[float, float],
        increases: bool,
        retention: float,
        tol: float = 0.01,
        max_calls: int = 16,
    ) -> None:
        target_count(retention, 1)
        self.make, self.increases = make, bool(increases)
        self.lo, self.hi = (float(v) for v in knob_range)
        self.retention, self.tol, self.max_calls = float(retention), float(tol), int(max_calls)
        self.needs_attention = bool(getattr(make(self.hi), "needs_attention", False))
        self.last: SearchInfo | None = None

    def __call__(self, hidden: torch.Tensor, grid: Grid, context=None) -> Reduction:
        began = time.perf_counter()
        extra = {"context": context} if self.needs_attention else {}
        n = hidden.shape[0]
        target = target_count(self.retention, n)
        info = SearchInfo()
        lo, hi = self.lo, self.hi  # knob values: fewer kept at `lo` side when increases
        above: Reduction | None = None
        plan = None
        for _ in range(self.max_calls):
            mid = 0.5 * (lo + hi) if info.calls else (hi if self.increases else lo)
            plan = self.make(mid)(hidden, grid, **extra)
            info.calls += 1
            if abs(plan.num_kept - target) <= 0.5 * self.tol * n:
                break
            if plan.num_kept > target:
                above = plan if above is None or plan.num_kept < above.num_kept else above
                lo, hi = (lo, mid) if self.increases else (mid, hi)
            else:
                lo, hi = (mid, hi) if self.increases else (lo, mid)
            if info.calls == 1 and plan.num_kept < target:
                break  # the most generous setting keeps too few: nothing to search
        else:
            plan = above if above is not None else plan
        self.last = info
        return settle(plan, self.retention, self.tol, info, began, repr(self))

    def __repr__(self) -> str:
        return f"KnobSearch(range=({self.lo}, {self.hi}), retention={self.retention}, tol={self.tol})"
