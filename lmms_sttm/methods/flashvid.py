"""``method=flashvid``: FlashVID's ADTS selection + tree-based spatio-temporal merging (TSTM) on the
input embeddings, then its FastV-style prune at layer 20 of 28 (Fan et al., ICLR 2026;
Fanziyang-v/FlashVID; ``merging/flashvid.py``). Query-aware: the prune reads the last prompt
token's attention, so every question is prefilled on its own (``llm_prune=false``: outer stage only).

``--model_args``: ``avg_retention`` (the authors' ``retention_ratio``, an average over the layers:
the outer stage keeps about ``expansion`` x it, the prune ``llm_retention`` of that; ``budget=50|30``:
0.50 / 0.30; the authors publish 0.10-0.25), ``expansion``, ``alpha``, ``temporal_threshold``,
``segment_threshold``, ``min_segments`` (default per family: 4 Qwen2-VL, else 8), ``selection``
(default: the authors' per family, ``attn_div_v2`` on LLaVA, Qwen3-VL (their wrapper's default)
and InternVL, ``attn_div`` on Qwen2-VL / Qwen2.5-VL; they read the vision tower's received
attention, which the model computes while encoding the video (``models/vision_attention.py``, timed
as vision time); a run without it, i.e. from stored ``features=``, defaults to ``div``),
``prune_layer`` (default 20 of 28 scaled to the model's depth), ``llm_retention``, ``llm_prune``.

``budget_mode=exact,retention=R``: the outer stage keeps about ``min(1, expansion x R)``, the prune
then exactly ``round(R * N)`` tokens of the video's ``N`` (without the prune the outer plan is
trimmed to ``R``). Positions: LLaVA renumbers after the outer stage (the authors' LLaVA code builds
the sequence from the kept tokens), Qwen keeps M-RoPE ids (theirs: the kept rows' ids); the prune
keeps positions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from lmms_sttm.merging import flashvid, two_stage
from lmms_sttm.merging.budget import SearchInfo, settle
from lmms_sttm.merging.two_stage import TwoStage
from lmms_sttm.methods.bind import EXACT_TOL, default_params
from lmms_sttm.methods.options import check_fraction
from lmms_sttm.methods.spec import MethodSpec, StageSpec, check_choice

AUTHORS_LAYER = 20
# the authors' scripts: 4 on Qwen2.5-VL, 8 on LLaVA; 8 is their Qwen3-VL wrapper's default and their
# config's (InternVL: not supported by them)
MIN_SEGMENTS = {"llava": 8, "qwen": 4, "qwen3_vl": 8, "internvl": 8}
# the authors' token selection: their LLaVA and Qwen2.5-VL scripts, their wrapper's default on Qwen3-VL
# (InternVL: not supported by them; their wrapper's default, on InternViT's scores)
SELECTION = {"llava": "attn_div_v2", "qwen": "attn_div", "qwen3_vl": "attn_div_v2", "internvl": "attn_div_v2"}
REFERENCE = "Fan et al., ICLR 2026 (arXiv 2602.08024), github.com/Fanziyang-v/FlashVID"


@dataclass(frozen=True)
class FlashVidSettings:
    avg_retention: float | None = None
    expansion: float = 1.25
    alpha: float = 0.7
    temporal_threshold: float = 0.8
    segment_threshold: float = 0.9
    min_segments: int | None = None
    selection: str | None = None
    prune_layer: int | None = None
    llm_retention: float = 0.3
    llm_prune: bool = True

    def __post_init__(self) -> None:
        for name in ("avg_retention", "alpha", "llm_retention"):
            check_fraction(name, getattr(self, name))
        if self.avg_retention == 0 or self.llm_retention == 0:
            raise ValueError("model_args avg_retention / llm_retention must be in (0, 1]")
        e = self.expansion
        if isinstance(e, bool) or not isinstance(e, (int, float)) or e <= 0:
            raise ValueError(f"model_args expansion={e!r} must be a positive number")
        t = self.temporal_threshold
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not -1 <= t < 1:
            raise ValueError(f"model_args temporal_threshold={t!r} must be a cosine in [-1, 1)")
        t = self.segment_threshold
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not -1 <= t <= 1:
            raise ValueError(f"model_args segment_threshold={t!r} must be a cosine in [-1, 1]")
        for name in ("min_segments", "prune_layer"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"model_args {name}={v!r} must be an integer >= 1")
        if self.selection is not None:
            check_choice("selection", self.selection, flashvid.SELECTIONS)
        if not isinstance(self.llm_prune, bool):
            raise ValueError(f"model_args llm_prune={self.llm_prune!r} must be true or false")

    def selection_for(self, ctx) -> str:
        """The selection on this run: the one asked for, else the authors' for the family when the
        run gives the vision tower's attention, else ``div``."""
        if self.selection is not None:
            return self.selection
        return SELECTION[ctx.family] if ctx.vision_attention else "div"

    def outer(self, retention: float, ctx) -> flashvid.OuterSettings:
        family = ctx.family
        segments = self.min_segments if self.min_segments is not None else MIN_SEGMENTS[family]
        return flashvid.OuterSettings(
            retention, self.expansion, self.alpha, self.temporal_threshold, self.segment_threshold,
            segments, True, self.selection_for(ctx),
        )  # fmt: skip


class Outer:
    """The outer stage; with ``exact`` set, its plan is trimmed to that share."""

    def __init__(self, settings: flashvid.OuterSettings, exact: float | None = None) -> None:
        self.settings, self.exact = settings, exact

    def __call__(self, hidden, grid, vision_scores=None):
        began = time.perf_counter()
        plan = flashvid.flashvid_outer(hidden, grid, self.settings, vision_scores)
        if self.exact is not None:
            plan = settle(plan, self.exact, EXACT_TOL, SearchInfo(calls=1), began, repr(self))
        return plan

    def __repr__(self) -> str:
        return f"FlashVidOuter({self.settings}, exact={self.exact})"


def inner_stage(ratio: float, exact: float | None = None) -> two_stage.Inner:
    return two_stage.Inner("FlashVidInner", flashvid.inner_count, flashvid.flashvid_inner, ratio, exact)


def _build(s: FlashVidSettings, ctx) -> TwoStage:
    inner = inner_stage(s.llm_retention) if s.llm_prune else None
    return TwoStage(Outer(s.outer(s.avg_retention, ctx)), inner, AUTHORS_LAYER, s.prune_layer, "flashvid")


def _exact(r: float, s: FlashVidSettings, ctx) -> TwoStage:
    if not s.llm_prune:
        return TwoStage(Outer(s.outer(r, ctx), exact=r), None, AUTHORS_LAYER, s.prune_layer, "flashvid")
    outer = Outer(s.outer(r, ctx))  # keeps about expansion x r
    return TwoStage(outer, inner_stage(s.llm_retention, exact=r), AUTHORS_LAYER, s.prune_layer, "flashvid")


def _params(s: FlashVidSettings, ctx) -> dict:
    """The settings with the selection this run uses (recorded with every answer)."""
    return {**default_params(None, s, ctx), "selection": s.selection_for(ctx)}


SPEC = MethodSpec(
    name="flashvid",
    build=_build,
    stages=(
        StageSpec(
            "input",
            frozenset({"hidden", "grid", "vision_attention"}),
            layer=0,
            note="outer: DySeg + ADTS (the vision tower's attention) + TSTM",
        ),
        StageSpec(
            "input",
            frozenset({"hidden", "prompt_attention"}),
            note="prune at layer 20 of 28 scaled to the depth (prune_layer=), reading layer k-1's attention",
        ),
    ),
    settings=FlashVidSettings,
    knobs=("avg_retention",),
    budgets={50: {"avg_retention": 0.50}, 30: {"avg_retention": 0.30}},
    exact=_exact,
    params=_params,
    reference=REFERENCE,
)
