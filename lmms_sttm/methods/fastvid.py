"""``method=fastvid``: FastVID (Shen et al., NeurIPS 2025; github.com/LunarShen/FastVID): dynamic
temporal segmentation, then density-based spatio-temporal pruning and merging per segment
(``merging/fastvid.py``), on the visual features as they enter the LLM (layer 0), like the authors.

``--model_args``: ``fastvid_ratio`` (the authors' ``fastvid_retention_ratio``; ``budget=50|30``
sets 0.5 / 0.3; their headline is 0.10-0.25), ``dyseg_c`` (8), ``dyseg_tau`` (0.9, their
LLaVA value), ``stprune_d`` (0.4), ``dtm_p`` (4), ``dtm_beta`` (0.6). Query-agnostic. Positions:
survivors keep their original position ids on every family, as the authors' LLaVA and Qwen2.5-VL
patches do. Saliency: the vision tower's attention of each frame's mean query (the read
``vision_attention`` with ``vision_score="frame_query"``, ``models/vision_attention.py``; computed
while the video is encoded, timed as vision time): the authors' Qwen2.5-VL computation, on every
Qwen; on LLaVA / InternVL (the authors read SigLIP's pooling head, which the checkpoints lack) the
same frame-mean query at the tower's feature layer. Without it (``features=`` runs) the stand-in
of ``merging/fastvid.py``; each answer records which (``saliency``). Frame features: the frame
means of the LLM-input features (the authors' Qwen2.5-VL choice). Exact budgets try
``fastvid_ratio = R``, search it per video when that keeps too few (``int(F * r)`` per frame
floors), then trim.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from lmms_sttm.merging.budget_guess import GuessThenSearch
from lmms_sttm.merging.fastvid import FastVidParams, FastVidReducer
from lmms_sttm.merging.vision_stage import VisionStage
from lmms_sttm.methods.bind import EXACT_TOL
from lmms_sttm.methods.recorded import baseline_params
from lmms_sttm.methods.spec import MethodSpec, StageSpec


def _fraction(name: str, value, low_open: bool = False) -> None:
    bad = isinstance(value, bool) or not isinstance(value, (int, float))
    if bad or not (0 < value <= 1 if low_open else 0 <= value <= 1):
        raise ValueError(
            f"model_args {name}={value!r} must be a fraction in {'(0, 1]' if low_open else '[0, 1]'}"
        )


@dataclass(frozen=True)
class FastVidSettings:
    fastvid_ratio: float | None = None
    dyseg_c: int = 8
    dyseg_tau: float = 0.9
    stprune_d: float = 0.4
    dtm_p: int = 4
    dtm_beta: float = 0.6

    def __post_init__(self) -> None:
        if self.fastvid_ratio is not None:
            _fraction("fastvid_ratio", self.fastvid_ratio, low_open=True)
        for name in ("dyseg_c", "dtm_p"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"model_args {name}={value!r} must be a positive integer")
        if isinstance(self.dyseg_tau, bool) or not isinstance(self.dyseg_tau, (int, float)):
            raise ValueError(f"model_args dyseg_tau={self.dyseg_tau!r} must be a number")
        _fraction("stprune_d", self.stprune_d)
        _fraction("dtm_beta", self.dtm_beta)


def _params(s: FastVidSettings) -> FastVidParams:
    return FastVidParams(s.fastvid_ratio, s.dyseg_c, s.dyseg_tau, s.stprune_d, s.dtm_p, s.dtm_beta)


#: ``saliency`` recorded with each answer: the vision tower's frame-query attention, or the stand-in
SALIENCY = {True: "vision_frame_query", False: "stand_in_frame_mean_dot"}


def _options(s, ctx) -> dict:
    return {"dyseg_c": s.dyseg_c, "dyseg_tau": s.dyseg_tau, "stprune_d": s.stprune_d, "dtm_p": s.dtm_p,
            "dtm_beta": s.dtm_beta, "saliency": SALIENCY[bool(ctx.vision_attention)]}  # fmt: skip


def _build(s, ctx) -> VisionStage:
    return VisionStage(FastVidReducer(_params(s)), "original", "fastvid")


class ExactOnScores:
    """``budget_mode=exact``: the knob at the retention itself, else a per-video search of it
    (``GuessThenSearch``), on the video's vision scores; ``last`` holds the search's cost."""

    def __init__(self, s: FastVidSettings, retention: float) -> None:
        self.settings, self.retention, self.last = s, retention, None

    def __call__(self, hidden, grid, vision_scores):
        def make(value: float):
            reducer = FastVidReducer(_params(dataclasses.replace(self.settings, fastvid_ratio=value)))
            return lambda h, g: reducer(h, g, vision_scores)

        search = GuessThenSearch(make, (1e-4, 1.0), self.retention, EXACT_TOL)
        plan = search(hidden, grid)
        self.last = search.last
        return plan


def _exact(r, s, ctx) -> VisionStage:
    return VisionStage(ExactOnScores(s, r), "original", f"fastvid exact {r}")


SPEC = MethodSpec(
    name="fastvid",
    build=_build,
    stages=(
        StageSpec(
            "input",
            frozenset({"hidden", "grid", "vision_attention"}),
            note="DySeg + STPrune + DTM; saliency: the vision tower's frame-mean-query attention",
        ),
    ),
    settings=FastVidSettings,
    knobs=("fastvid_ratio",),
    budgets={50: {"fastvid_ratio": 0.5}, 30: {"fastvid_ratio": 0.3}},
    exact=_exact,
    position_rule="original",
    default_layer=0,
    params=baseline_params("fastvid_ratio", _options),
    reference="Shen et al., NeurIPS 2025 (github.com/LunarShen/FastVID)",
    vision_score="frame_query",
)
