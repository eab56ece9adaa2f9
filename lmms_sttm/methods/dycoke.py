"""``method=dycoke_stage1`` and ``method=dycoke``: DyCoke's temporal token merging (stage 1, before
the LLM: layer 0 by default for the full method) and, for ``dycoke``, its decode-time KV pruning
(stage 2, ``merging/dycoke_kv.py``) as the STTM authors ran them (Tao et al., CVPR 2025; KD-TAO/DyCoke).

``--model_args``: ``prune`` (``budget=50|30``: the authors' 0.70 / 0.925), ``token_order``
(``authors``: topk order; ``raster``) and, for ``dycoke``, ``dycoke_kv`` (``authors``, ``video``,
``gated``). Stage 1 is query-agnostic; stage 2 reads each generated token's attention, which
follows the question, so ``dycoke`` prefills per question.
"""

from __future__ import annotations

from dataclasses import dataclass

from lmms_sttm.merging.budget import ExactBudget
from lmms_sttm.merging.dycoke import DycokeStage1Reducer
from lmms_sttm.merging.dycoke_kv import MODES
from lmms_sttm.methods.bind import EXACT_TOL
from lmms_sttm.methods.options import check_fraction, check_token_order
from lmms_sttm.methods.recorded import baseline_params
from lmms_sttm.methods.spec import MethodSpec, StageSpec, check_choice

REFERENCE = "Tao et al., CVPR 2025 (github.com/KD-TAO/DyCoke), as ported by the STTM authors"
STAGE = StageSpec("input", frozenset({"hidden", "grid"}))


@dataclass(frozen=True)
class Stage1Settings:
    prune: float | None = None
    token_order: str = "authors"

    def __post_init__(self) -> None:
        check_fraction("prune", self.prune)
        check_token_order(self.token_order)


@dataclass(frozen=True)
class DycokeSettings(Stage1Settings):
    dycoke_kv: str = "authors"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("dycoke_kv", self.dycoke_kv, tuple(MODES))


def _build(s, ctx):
    return DycokeStage1Reducer(prune=s.prune, order=s.token_order)


def _exact(r, s, ctx):
    return ExactBudget(DycokeStage1Reducer(keep=r, order=s.token_order), r, EXACT_TOL)


def _kv_options(s, ctx) -> dict:
    kv = MODES[s.dycoke_kv]
    return {"token_order": s.token_order, "dycoke_kv": s.dycoke_kv, "kv_layer": kv.layer, "kv_prune": kv.prune,
            "kv_similarity": kv.similarity, "kv_span": kv.span}  # fmt: skip


STAGE1 = MethodSpec(
    name="dycoke_stage1",
    build=_build,
    stages=(STAGE,),
    settings=Stage1Settings,
    knobs=("prune",),
    budgets={50: {"prune": 0.70}, 30: {"prune": 0.925}},
    exact=_exact,
    params=baseline_params("prune", lambda s, ctx: {"token_order": s.token_order}),
    reference=REFERENCE,
)

FULL = MethodSpec(
    name="dycoke",
    build=_build,
    stages=(
        STAGE,
        StageSpec("decode", frozenset({"decode_attention"}), note="KV pruning at every decode step"),
    ),
    settings=DycokeSettings,
    knobs=("prune",),
    budgets={50: {"prune": 0.70}, 30: {"prune": 0.925}},
    exact=_exact,
    decode=lambda s, ctx: MODES[s.dycoke_kv],
    default_layer=0,  # stage 1 runs before the LLM
    params=baseline_params("prune", _kv_options),
    reference=REFERENCE,
)
