"""``method=vidcom2``: VidCom2 (Liu et al., EMNLP 2025; github.com/xuyang-liu16/VidCom2): frame
budgets from each frame's distinctiveness, then the most distinct tokens of each frame
(``merging/vidcom2.py``), on the visual features as they enter the LLM (layer 0), like the authors.

``--model_args``: ``r_ratio`` (the authors' ``R_RATIO``, the base retention; ``budget=50|30`` sets
0.5 / 0.3; their default is 0.25). Query-agnostic. Positions: the family's rule (Qwen survivors
keep their M-RoPE ids, as the authors' Qwen patches do; LLaVA renumbers, as theirs does).
Exact budgets try ``r_ratio = R`` and search it per video only when that keeps too few
(frame budgets are rounded and capped at a whole frame).
"""

from __future__ import annotations

from dataclasses import dataclass

from lmms_sttm.merging.budget_guess import GuessThenSearch
from lmms_sttm.merging.vidcom2 import Vidcom2Reducer
from lmms_sttm.methods.bind import EXACT_TOL
from lmms_sttm.methods.recorded import baseline_params
from lmms_sttm.methods.spec import MethodSpec, StageSpec


@dataclass(frozen=True)
class Vidcom2Settings:
    r_ratio: float | None = None

    def __post_init__(self) -> None:
        r = self.r_ratio
        if r is not None and (isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 < r <= 1):
            raise ValueError(f"model_args r_ratio={r!r} must be in (0, 1]")


def _exact(r, s, ctx):
    """The knob at the retention itself, else a per-video search of it (``GuessThenSearch``)."""

    def make(value: float):
        return Vidcom2Reducer(value)

    return GuessThenSearch(make, (1e-4, 1.0), r, EXACT_TOL)


SPEC = MethodSpec(
    name="vidcom2",
    build=lambda s, ctx: Vidcom2Reducer(s.r_ratio),
    stages=(StageSpec("input", frozenset({"hidden", "grid"})),),
    settings=Vidcom2Settings,
    knobs=("r_ratio",),
    budgets={50: {"r_ratio": 0.5}, 30: {"r_ratio": 0.3}},
    exact=_exact,
    default_layer=0,
    params=baseline_params("r_ratio"),
    reference="Liu et al., EMNLP 2025 (github.com/xuyang-liu16/VidCom2)",
)
