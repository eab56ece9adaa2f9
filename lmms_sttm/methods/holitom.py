"""``method=holitom``: HoliTom's outer-LLM temporal + spatial merge on the input embeddings, then its
inner-LLM merge at layer 18 of 28 (Shao et al., NeurIPS 2025; cokeshao/HoliTom;
``merging/holitom.py``). Query-aware: the inner merge reads the last prompt token's attention, so
every question is prefilled on its own (``inner_merge=false``: the authors' "w/o M", query-agnostic
in effect but declared with both stages).

``--model_args``: ``retain`` (``budget=50|30``: 0.50 / 0.30; the authors publish 0.10-0.25 with
``tau`` 0.65 at 0.10, 0.80 above), ``tau``, ``beta``, ``contextual`` (their ``D``: the share of kept
dynamic tokens that come from DPC-kNN rather than the vision tower's attention; default theirs, 0:
every kept dynamic token a dominant one by the vision tower's received attention, which the model
computes while encoding the video, ``models/vision_attention.py``, timed as vision time; a run
without it, i.e. from stored ``features=``, defaults to 1),
``knn``, ``max_window``, ``inner_ratio`` (their ``HOLITOM_r``), ``inner_layer`` (their
``HOLITOM_k``; default 18 of 28 scaled to the model's depth), ``inner_merge``.

``budget_mode=exact,retention=R``: the outer stage keeps ``min(1, R / (1 - inner_ratio))`` (the
authors' proportions), the inner merge then keeps exactly ``round(R * N)`` tokens of the video's
``N``; without the inner merge the outer stage's plan is trimmed to ``R``. Where the authors' ``tau``
merges so much over time that the outer stage leaves fewer than ``R * N`` tokens, exact mode raises
``tau`` (less temporal merging) to the lowest value that leaves enough. Positions: LLaVA
renumbers the sequence after the outer stage (as the authors' LLaVA code), Qwen keeps M-RoPE ids
(the authors support LLaVA-OneVision / LLaVA-Video only; on Qwen each kept token takes its
representative's id); the inner merge keeps positions (theirs: the kept rows' position ids).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

from lmms_sttm.merging import holitom, two_stage
from lmms_sttm.merging.budget import SearchInfo, settle, target_count
from lmms_sttm.merging.two_stage import TwoStage
from lmms_sttm.methods.bind import EXACT_TOL, default_params
from lmms_sttm.methods.options import check_fraction
from lmms_sttm.methods.spec import MethodSpec, StageSpec

AUTHORS_LAYER = 18
REFERENCE = "Shao et al., NeurIPS 2025 (arXiv 2505.21334), github.com/cokeshao/HoliTom"


@dataclass(frozen=True)
class HoliTomSettings:
    retain: float | None = None
    tau: float = 0.80
    beta: float = 0.6
    contextual: float | None = None
    knn: int = 7
    max_window: int = 1024
    inner_ratio: float = 0.5
    inner_layer: int | None = None
    inner_merge: bool = True

    def __post_init__(self) -> None:
        for name in ("retain", "beta", "contextual"):
            check_fraction(name, getattr(self, name))
        if self.retain == 0:
            raise ValueError("model_args retain=0 keeps nothing; use a fraction in (0, 1]")
        if not isinstance(self.tau, (int, float)) or isinstance(self.tau, bool) or not -1 <= self.tau <= 1:
            raise ValueError(f"model_args tau={self.tau!r} must be a cosine in [-1, 1]")
        check_fraction("inner_ratio", self.inner_ratio)
        if self.inner_ratio == 1:
            raise ValueError("model_args inner_ratio=1 would merge every token away; use [0, 1)")
        for name, low in (("knn", 1), ("max_window", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ValueError(f"model_args {name}={v!r} must be an integer >= {low}")
        v = self.inner_layer
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ValueError(f"model_args inner_layer={v!r} must be an integer >= 1")
        if not isinstance(self.inner_merge, bool):
            raise ValueError(f"model_args inner_merge={self.inner_merge!r} must be true or false")

    def contextual_for(self, ctx) -> float:
        """``D`` on this run: the one asked for, else the authors' 0 when the run gives the vision
        tower's attention, else 1 (DPC-kNN only)."""
        if self.contextual is not None:
            return float(self.contextual)
        return 0.0 if ctx.vision_attention else 1.0

    def outer(self, retain: float, ctx) -> holitom.OuterSettings:
        d = self.contextual_for(ctx)
        return holitom.OuterSettings(retain, self.tau, self.beta, d, self.knn, self.max_window)


class Outer:
    """The outer stage at one retention. Exact budgets (``floor`` set): when the authors' ``tau``
    merges so much over time that fewer than ``round(floor * N)`` tokens stay, ``tau`` is raised
    (bisection towards 1, then no temporal merge) to the lowest value that keeps enough; with
    ``trim`` set, the plan is then trimmed to that share."""

    STEPS = 8

    def __init__(
        self, settings: holitom.OuterSettings, floor: float | None = None, trim: bool = False
    ) -> None:
        self.settings, self.floor, self.trim = settings, floor, trim

    def _plan(self, hidden, grid, vision_scores, tau: float):
        return holitom.holitom_outer(hidden, grid, dataclasses.replace(self.settings, tau=tau), vision_scores)

    def __call__(self, hidden, grid, vision_scores=None):
        began = time.perf_counter()
        plan = self._plan(hidden, grid, vision_scores, self.settings.tau)
        if self.floor is None:
            return plan
        need = target_count(self.floor, plan.num_original)
        if plan.num_kept < need:
            low, high = self.settings.tau, 1.0
            best = self._plan(hidden, grid, vision_scores, 2.0)  # no temporal merge
            for _ in range(self.STEPS):
                mid = 0.5 * (low + high)
                cand = self._plan(hidden, grid, vision_scores, mid)
                if cand.num_kept >= need:
                    best, high = cand, mid
                else:
                    low = mid
            plan = best
        if self.trim:
            plan = settle(plan, self.floor, EXACT_TOL, SearchInfo(calls=1), began, repr(self))
        return plan

    def __repr__(self) -> str:
        return f"HoliTomOuter({self.settings}, floor={self.floor}, trim={self.trim})"


def inner_stage(ratio: float, exact: float | None = None) -> two_stage.Inner:
    return two_stage.Inner("HoliTomInner", holitom.inner_count, holitom.holitom_inner, ratio, exact)


def _build(s: HoliTomSettings, ctx) -> TwoStage:
    inner = inner_stage(s.inner_ratio) if s.inner_merge else None
    return TwoStage(Outer(s.outer(s.retain, ctx)), inner, AUTHORS_LAYER, s.inner_layer, "holitom")


def _exact(r: float, s: HoliTomSettings, ctx) -> TwoStage:
    if not s.inner_merge:
        return TwoStage(
            Outer(s.outer(r, ctx), floor=r, trim=True), None, AUTHORS_LAYER, s.inner_layer, "holitom"
        )
    outer = Outer(s.outer(min(1.0, r / (1 - s.inner_ratio)), ctx), floor=r)
    return TwoStage(outer, inner_stage(s.inner_ratio, exact=r), AUTHORS_LAYER, s.inner_layer, "holitom")


def _params(s: HoliTomSettings, ctx) -> dict:
    """The settings with the ``D`` this run uses (recorded with every answer)."""
    return {**default_params(None, s, ctx), "contextual": s.contextual_for(ctx)}


SPEC = MethodSpec(
    name="holitom",
    build=_build,
    stages=(
        StageSpec(
            "input",
            frozenset({"hidden", "grid", "vision_attention"}),
            layer=0,
            note="outer: temporal windows + spatial merge (dominant tokens by the vision tower's attention)",
        ),
        StageSpec(
            "input",
            frozenset({"hidden", "prompt_attention"}),
            note="inner merge at layer 18 of 28 scaled to the depth (inner_layer=), reading layer k-1's attention",
        ),
    ),
    settings=HoliTomSettings,
    knobs=("retain",),
    budgets={50: {"retain": 0.50}, 30: {"retain": 0.30}},
    exact=_exact,
    params=_params,
    reference=REFERENCE,
)
