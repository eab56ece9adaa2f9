"""``method=framefusion``: FrameFusion's merge of same-position tokens across frames, then a prune by
the last prompt token's attention (Fu et al., ICCV 2025; thu-nics/FrameFusion), as the STTM authors
ran it: ``framefusion=authors`` merges on the input embeddings and after each layer's attention
until its cost budget is met (``merging/framefusion_authors.py``); ``single_layer`` merges and
prunes once at layer k (``merging/framefusion.py``; what ``budget_mode=exact`` trims).
``--model_args``: ``cost`` (``budget=50|30``: 0.50 / 0.30), ``framefusion``. Query-aware.
"""

from __future__ import annotations

from dataclasses import dataclass

from lmms_sttm.merging.budget import ExactBudget
from lmms_sttm.merging.framefusion import FrameFusionReducer
from lmms_sttm.merging.framefusion_authors import FrameFusion
from lmms_sttm.methods.bind import EXACT_TOL
from lmms_sttm.methods.options import check_fraction
from lmms_sttm.methods.recorded import baseline_params
from lmms_sttm.methods.spec import MethodSpec, StageSpec, check_choice

VARIANTS = ("authors", "single_layer")


@dataclass(frozen=True)
class FrameFusionSettings:
    cost: float | None = None
    framefusion: str = "authors"

    def __post_init__(self) -> None:
        check_fraction("cost", self.cost)
        check_choice("framefusion", self.framefusion, VARIANTS)


def _build(s: FrameFusionSettings, ctx):
    return FrameFusion(s.cost) if s.framefusion == "authors" else FrameFusionReducer(cost=s.cost)


def _options(s: FrameFusionSettings, ctx) -> dict:
    return {"framefusion": "single_layer" if ctx.budget_mode == "exact" else s.framefusion}


SPEC = MethodSpec(
    name="framefusion",
    build=_build,
    stages=(
        StageSpec(
            "input", frozenset({"hidden", "grid"}), layer=0, note="authors: merge on the input embeddings"
        ),
        StageSpec(
            "attention",
            frozenset({"hidden", "tokens", "prompt_attention"}),
            note="authors: after each layer's attention until the budget is met, the last one prunes; "
            "single_layer: one merge-and-prune at layer k",
        ),
    ),
    settings=FrameFusionSettings,
    knobs=("cost",),
    budgets={50: {"cost": 0.50}, 30: {"cost": 0.30}},
    exact=lambda r, s, ctx: ExactBudget(FrameFusionReducer(keep=r), r, EXACT_TOL),
    position_rule="original",
    params=baseline_params("cost", _options),
    reference="Fu et al., ICCV 2025 (github.com/thu-nics/FrameFusion), as ported by the STTM authors",
)
