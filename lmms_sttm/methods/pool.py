"""``method=pool``: keep a share of each frame's tokens by average pooling (``merging/pool.py``; this
package's own query-agnostic control). ``--model_args``: ``keep`` (``budget=50|30``: 0.50 / 0.30)."""

from __future__ import annotations

from dataclasses import dataclass

from lmms_sttm.merging.budget import ExactBudget
from lmms_sttm.merging.pool import PoolReducer
from lmms_sttm.methods.bind import EXACT_TOL
from lmms_sttm.methods.options import check_fraction
from lmms_sttm.methods.recorded import baseline_params
from lmms_sttm.methods.spec import MethodSpec, StageSpec


@dataclass(frozen=True)
class PoolSettings:
    keep: float | None = None

    def __post_init__(self) -> None:
        check_fraction("keep", self.keep)


SPEC = MethodSpec(
    name="pool",
    build=lambda s, ctx: PoolReducer(s.keep),
    stages=(StageSpec("input", frozenset({"hidden", "grid"})),),
    settings=PoolSettings,
    knobs=("keep",),
    budgets={50: {"keep": 0.50}, 30: {"keep": 0.30}},
    exact=lambda r, s, ctx: ExactBudget(PoolReducer(r, tol=EXACT_TOL / 2), r, EXACT_TOL),
    params=baseline_params("keep"),
    reference="average pooling of each frame's grid (this package's control)",
)
