"""The exact-budget search and wrappers in isolation: the threshold search on counts given by hand
(log-linear counts, where the secant lands on the target, and a jump the search cannot cross),
``sttm_exact``'s plumbing and trimming with a stand-in counter, ``ExactBudget``'s trim rule at its
boundary, and the argument checks."""

from __future__ import annotations

import math
import re

import pytest
import torch

from lmms_sttm.merging import budget
from lmms_sttm.merging.budget import (
    ExactBudget,
    SearchInfo,
    _search,
    check_budget,
    sttm_exact,
    target_count,
)
from lmms_sttm.merging.groups import from_groups


def _exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


def _recording(kept_of_lam, d_s=0.4):
    """``count(tau_s, tau_t)`` for the default direction (d_s = 0.2 / 0.5 = 0.4 after scaling)."""
    seen = []

    def count(tau_s, tau_t):
        lam = (1.0 - tau_s) / d_s
        seen.append((tau_s, tau_t, lam))
        return kept_of_lam(lam)

    return count, seen


def test_search_lands_on_a_log_linear_count_by_hand():
    # kept = 10000 * 0.5 / lam: the reference pair (lam = 0.5) keeps 10000; the second call steps
    # log(lam) by +0.05 (too many kept); the secant through the two (rounded) points lands near
    # lam = 2.5, within the band (50 tokens) of 2000
    count, seen = _recording(lambda lam: round(10000 * 0.5 / lam))
    info = SearchInfo()
    found = _search(count, 10000, 2000, 0.01, (0.8, 0.5), 14, info)
    lams = [s[2] for s in seen]
    assert info.calls == 3 and len(lams) == 3
    assert lams[0] == pytest.approx(0.5) and lams[1] == pytest.approx(0.5 * math.exp(0.05))
    assert lams[2] == pytest.approx(2.5, rel=2e-3)
    tau_s, tau_t, k = found
    assert (
        abs(k - 2000) <= 50
        and k == round(5000 / lams[2])
        and tau_s == pytest.approx(1 - lams[2] * 0.4)
        and tau_t == budget.MIN_TAU_T
    )  # held above 0
    # first pair: the reference pair itself, (0.8, 0.5)
    assert seen[0][0] == pytest.approx(0.8) and seen[0][1] == pytest.approx(0.5)


def test_search_steps_down_when_too_few_are_kept():
    count, seen = _recording(lambda lam: round(1000 * 0.5 / lam))
    info = SearchInfo()
    tau_s, tau_t, k = _search(count, 10000, 1500, 0.01, (0.8, 0.5), 14, info)
    lams = [s[2] for s in seen]
    assert lams[1] == pytest.approx(0.5 * math.exp(-0.05)) and lams[2] == pytest.approx(1 / 3, rel=3e-3)
    assert (
        abs(k - 1500) <= 50
        and tau_t == pytest.approx(1 - lams[2])
        and tau_s == pytest.approx(1 - 0.4 * lams[2])
    )


def test_search_over_a_jump_returns_the_smallest_count_above():
    # 3000 kept below lam = 1, 1000 above: no pair within the band; the bracket closes on lam = 1
    count, seen = _recording(lambda lam: 3000 if lam < 1 else 1000)
    info = SearchInfo()
    tau_s, tau_t, k = _search(count, 10000, 2000, 0.01, (0.8, 0.5), 40, info)
    assert k == 3000 and (1 - tau_s) / 0.4 == pytest.approx(0.5)  # the first pair of the smallest count
    below = [lam for *_, lam in seen if lam < 1]
    above = [lam for *_, lam in seen if lam >= 1]
    assert math.log(min(above)) - math.log(max(below)) < 1e-4  # the bracket closed on the jump
    assert info.calls == len(seen) < 40  # stopped by the bracket width, not the call budget
    assert all(abs(math.log(b[2]) - math.log(a[2])) > 0 for a, b in zip(seen, seen[1:], strict=False))
    short = SearchInfo()
    _search(count, 10000, 2000, 0.01, (0.8, 0.5), 5, short)
    assert short.calls == 5
    # every count below the target: nothing to return
    assert _search(lambda s, t: 10, 10000, 2000, 0.01, (0.8, 0.5), 14, SearchInfo()) is None


def test_search_direction_must_have_thresholds_in_0_1():
    for direction in ((1.0, 1.0), (-0.5, 0.5)):
        with pytest.raises(
            ValueError, match=_exactly(f"exact-budget direction {direction} must have thresholds in (0, 1)")
        ):
            _search(lambda s, t: 1, 10, 5, 0.01, direction, 14, SearchInfo())


class _Counts:
    """Stand-in for ``SttmCounts``: counts from ``kept_of_lam``, plans of that many groups."""

    made: list = []

    def __init__(self, pyr, feats, norms, dtype=None, **options):
        self.dtype, self.options, self.weighted = dtype, options, []
        _Counts.made.append(self)

    def count(self, tau_s, tau_t):
        return self.kept_of_lam((1 - tau_s) / 0.4)

    def plan(self, tau_s, tau_t, weighted=False):
        self.weighted.append(weighted)
        k = self.kept_of_lam((1 - tau_s) / 0.4)
        return from_groups(self.x, torch.arange(self.x.shape[0]) % k, self.grid)


def _stand_in(monkeypatch, x, grid, kept_of_lam):
    from lmms_sttm.merging import sttm

    calls = {}
    monkeypatch.setattr(sttm, "check_inputs", lambda *a: calls.setdefault("check", a))
    monkeypatch.setattr(sttm, "pyramid_features", lambda *a: calls.setdefault("pyramid", a) and (0, 0, 0, 0))
    _Counts.made = []
    monkeypatch.setattr(_Counts, "kept_of_lam", staticmethod(kept_of_lam), raising=False)
    monkeypatch.setattr(_Counts, "x", x.reshape(-1, x.shape[-1]), raising=False)
    monkeypatch.setattr(_Counts, "grid", grid, raising=False)
    monkeypatch.setattr(budget, "SttmCounts", _Counts)
    return calls


def test_sttm_exact_passes_its_options_and_trims_after_a_jump(monkeypatch):
    grid = (4, 8, 8)  # N = 256, target 128, band 0.5 * 0.01 * 256 = 1.28
    x = torch.randn(256, 3, dtype=torch.float64)
    calls = _stand_in(monkeypatch, x, grid, lambda lam: 200 if lam < 1 else 60)
    options = {"best_partner": True, "weighted": True, "merge_dtype": "float32", "union_find": "exact"}
    plan, info = sttm_exact(x, grid, 0.5, merge_options=options)  # default tol 0.01, 14 calls
    (counts,) = _Counts.made
    assert counts.options == {"best_partner": True, "union_find": "exact"} and counts.dtype == torch.float64
    assert counts.weighted == [True]
    assert calls["check"][4:] == ("exact", "float32") and calls["pyramid"][2] == "float32"
    assert info.calls == 14 and info.trimmed == 72 and plan.num_kept == 128
    assert (1 - info.tau_s) / (1 - info.tau_t) == pytest.approx(0.4)  # both thresholds reported
    assert info.seconds > 0 and info.seconds < 60
    plain, _ = sttm_exact(x, grid, 0.5)
    assert _Counts.made[-1].weighted == [False] and _Counts.made[-1].options == {}
    assert plain.num_kept == 128


def test_sttm_exact_defaults_reach_check_inputs(monkeypatch):
    grid = (4, 8, 8)
    x = torch.randn(256, 3)
    calls = _stand_in(monkeypatch, x, grid, lambda lam: 128)
    sttm_exact(x, grid, 0.5)
    assert calls["check"][4:] == ("authors", "input") and calls["pyramid"][2] == "input"


def test_sttm_exact_trims_just_outside_the_band_and_not_on_its_edge(monkeypatch):
    grid = (4, 8, 8)
    x = torch.randn(256, 3)
    _stand_in(monkeypatch, x, grid, lambda lam: 131 if lam < 1 else 60)  # 3 above: outside 1.28
    plan, info = sttm_exact(x, grid, 0.5)
    assert info.trimmed == 3 and plan.num_kept == 128
    grid = (2, 10, 10)  # N = 200, band 1.0; target round(0.64 * 200) = 128; 129 is on the edge
    x = torch.randn(200, 3)
    _stand_in(monkeypatch, x, grid, lambda lam: 129)
    plan, info = sttm_exact(x, grid, 0.64)
    assert info.trimmed == 0 and plan.num_kept == 129 and info.calls == 1


def test_sttm_exact_falls_back_to_the_identity_when_every_count_is_below(monkeypatch):
    grid = (4, 8, 8)
    x = torch.randn(256, 3)
    _stand_in(monkeypatch, x, grid, lambda lam: 5)
    plan, info = sttm_exact(x, grid, 0.5)
    assert (info.tau_s, info.tau_t) == (1.0, 1.0) and info.trimmed == 128 and plan.num_kept == 128


class _Fixed:
    """A reducer keeping the first ``k`` tokens as their own groups and the rest in the last one."""

    def __init__(self, k: int) -> None:
        self.k = k

    def __call__(self, hidden, grid):
        labels = torch.clamp(torch.arange(hidden.shape[0]), max=self.k - 1)
        return from_groups(hidden, labels, grid)

    def __repr__(self) -> str:
        return f"_Fixed({self.k})"


def test_exact_budget_trims_only_beyond_half_the_tolerance():
    x = torch.randn(200, 3)
    edge = ExactBudget(_Fixed(101), 0.5, 0.01)  # 0.505 = retention + tol / 2: kept as is
    assert edge(x, (2, 10, 10)).num_kept == 101
    assert edge.last.trimmed == 0 and edge.last.calls == 1 and edge.last.seconds > 0
    over = ExactBudget(_Fixed(102), 0.5, 0.01)  # 0.51: trimmed to round(0.5 * 200)
    assert over(x, (2, 10, 10)).num_kept == 100 and over.last.trimmed == 2
    with pytest.raises(
        ValueError, match=re.escape("ExactBudget(_Fixed(50), retention=0.5, tol=0.01) kept 50/200")
    ):
        ExactBudget(_Fixed(50), 0.5, 0.01)(x, (2, 10, 10))
    assert ExactBudget(_Fixed(3), 0.5).needs_attention is False


def test_check_budget_and_target_count_bounds():
    x = torch.randn(100, 2)
    plan = from_groups(x, torch.clamp(torch.arange(100), max=50), (1, 10, 10))  # 51 of 100
    check_budget(plan, 0.5, 0.01, "edge")  # |0.51 - 0.5| is 0.01 up to rounding: inside
    with pytest.raises(
        ValueError, match=_exactly("who kept 51/100 = 0.5100 of the tokens, outside retention 0.5 +- 0.009")
    ):
        check_budget(plan, 0.5, 0.009, "who")
    assert target_count(0.001, 100) == 1 and target_count(1.0, 100) == 100 and target_count(0.305, 100) == 30
    for bad in (0, 1.5, -0.1):
        with pytest.raises(ValueError, match=_exactly(f"retention must be in (0, 1], got {bad}")):
            target_count(bad, 100)


def test_sttm_exact_reducer_passes_its_merge_options(monkeypatch):
    from lmms_sttm.merging.budget import SttmExactReducer

    grid = (4, 8, 8)
    x = torch.randn(256, 3)
    _stand_in(monkeypatch, x, grid, lambda lam: 128)
    reducer = SttmExactReducer(0.5, merge_options={"weighted": True, "best_partner": True})
    assert reducer(x, grid).num_kept == 128 and reducer.last.calls == 1
    assert _Counts.made[-1].weighted == [True] and _Counts.made[-1].options == {"best_partner": True}
