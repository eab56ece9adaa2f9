"""Exact budgets for methods whose own retention knob already lands near the target (VidCom2's
``R_RATIO``, FastVID's retention ratio): try the knob at the retention itself; while that plan
keeps too few tokens (more than ``tol / 2`` below), scale the knob by ``target / kept`` (at most
``GUESSES`` tries); a plan at or above the target is settled (an overshoot trimmed). Only when the
guesses never reach the target does the per-video bisection of ``KnobSearch`` run (a capped frame
budget; small frames whose ``int(F * r)`` floors far below ``r * F``)."""

from __future__ import annotations

import time

from lmms_sttm.merging.budget import KnobSearch, SearchInfo, settle, target_count
from lmms_sttm.merging.groups import Grid
from lmms_sttm.merging.reduction import Reduction

GUESSES = 3


class GuessThenSearch:
    """``make(value) -> reducer``; the first try is ``make(retention)``; ``last`` holds the cost."""

    needs_attention = False

    def __init__(self, make, knob_range: tuple[float, float], retention: float, tol: float = 0.01) -> None:
        target_count(retention, 1)
        self.make, self.retention, self.tol = make, float(retention), float(tol)
        self.hi = float(knob_range[1])
        self.search = KnobSearch(make, knob_range, True, retention, tol)
        self.last: SearchInfo | None = None

    def __call__(self, hidden, grid: Grid) -> Reduction:
        began = time.perf_counter()
        value = self.retention
        for calls in range(1, GUESSES + 1):
            plan = self.make(value)(hidden, grid)
            if plan.ratio >= self.retention - 0.5 * self.tol:
                self.last = SearchInfo(calls=calls)
                return settle(plan, self.retention, self.tol, self.last, began, repr(self))
            if value >= self.hi:
                break
            value = min(self.hi, value * self.retention / max(plan.ratio, 1e-9))
        plan = self.search(hidden, grid)
        self.last = self.search.last
        self.last.calls += calls
        return plan

    def __repr__(self) -> str:
        return f"GuessThenSearch(retention={self.retention}, tol={self.tol})"
