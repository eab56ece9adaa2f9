"""``method=tome``: ToMe's bipartite soft matching over all of a video's tokens at layer k, as the
STTM authors ported it (``merging/tome.py``; Bolya et al., ICLR 2023; github.com/facebookresearch/ToMe).

``--model_args``: ``prune`` (share merged away; ``budget=50|30`` sets the authors' 0.50 / 0.70) and
``token_order`` (``authors``: their similarity order; ``raster``). Query-agnostic.
"""

from __future__ import annotations

from dataclasses import dataclass

from lmms_sttm.merging.budget import ExactBudget
from lmms_sttm.merging.tome import TomeReducer
from lmms_sttm.methods.bind import EXACT_TOL
from lmms_sttm.methods.options import check_fraction, check_token_order
from lmms_sttm.methods.recorded import baseline_params
from lmms_sttm.methods.spec import MethodSpec, StageSpec


@dataclass(frozen=True)
class TomeSettings:
    prune: float | None = None
    token_order: str = "authors"

    def __post_init__(self) -> None:
        check_fraction("prune", self.prune)
        check_token_order(self.token_order)


SPEC = MethodSpec(
    name="tome",
    build=lambda s, ctx: TomeReducer(prune=s.prune, order=s.token_order),
    stages=(StageSpec("input", frozenset({"hidden", "grid"})),),
    settings=TomeSettings,
    knobs=("prune",),
    budgets={50: {"prune": 0.50}, 30: {"prune": 0.70}},
    exact=lambda r, s, ctx: ExactBudget(TomeReducer(r, order=s.token_order), r, EXACT_TOL),
    params=baseline_params("prune", lambda s, ctx: {"token_order": s.token_order}),
    reference="Bolya et al., ICLR 2023; the STTM authors' one-shot video port (HYUNJS/STTM)",
)
