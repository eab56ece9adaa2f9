"""``method=fastv``: drop the video tokens the last prompt token attends to least, after layer k-1
(Chen et al., ECCV 2024; pkunlp-icler/FastV; ``merging/fastv.py``), survivors keeping their
positions. ``--model_args``: ``evict`` (``budget=50|30``: the authors' 0.50 / 0.70). Query-aware:
the scores are the last prompt token's attention, so every question is prefilled on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from lmms_sttm.merging.budget import ExactBudget
from lmms_sttm.merging.fastv import FastVReducer
from lmms_sttm.methods.bind import EXACT_TOL
from lmms_sttm.methods.options import check_fraction
from lmms_sttm.methods.recorded import baseline_params
from lmms_sttm.methods.spec import MethodSpec, StageSpec


@dataclass(frozen=True)
class FastVSettings:
    evict: float | None = None

    def __post_init__(self) -> None:
        check_fraction("evict", self.evict)


SPEC = MethodSpec(
    name="fastv",
    build=lambda s, ctx: FastVReducer(evict=s.evict),
    stages=(StageSpec("input", frozenset({"hidden", "grid", "prompt_attention"})),),
    settings=FastVSettings,
    knobs=("evict",),
    budgets={50: {"evict": 0.50}, 30: {"evict": 0.70}},
    exact=lambda r, s, ctx: ExactBudget(FastVReducer(r), r, EXACT_TOL),
    position_rule="original",
    params=baseline_params("evict"),
    reference="Chen et al., ECCV 2024 (github.com/pkunlp-icler/FastV), as ported by the STTM authors",
)
