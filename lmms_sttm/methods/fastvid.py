"""``method=fastvid``: FastVID (Shen et al., NeurIPS 2025; github.com/LunarShen/FastVID): dynamic
temporal segmentation, then density-based spatio-temporal pruning and merging per segment
(``merging/fastvid.py``), on the visual features as they enter the LLM (layer 0), like the authors.

``--model_args``: ``fastvid_ratio`` (the authors' ``fastvid_retention_ratio``; ``budget=50|30``
sets 0.5 / 0.3; their headline is 0.10-0.25), ``dyseg_c`` (8), ``dyseg_tau`` (0.9, their
LLaVA value), ``stprune_d`` (0.4), ``dtm_p`` (4), ``dtm_beta`` (0.6). Query-agnostic. Positions:
survivors keep their original position ids on every family, as the authors' LLaVA and Qwen2.5-VL
patches do. The authors read a saliency score and frame features from the vision tower; this
stage sees the LLM-input features only and uses the stand-ins the module docstring states.
Exact budgets try ``fastvid_ratio = R``, search it per video when that keeps too few
(``int(F * r)`` per frame floors), then trim.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from lmms_sttm.merging.budget_guess import GuessThenSearch
from lmms_sttm.merging.fastvid import FastVidParams, FastVidReducer
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


def _options(s, ctx) -> dict:
    return {"dyseg_c": s.dyseg_c, "dyseg_tau": s.dyseg_tau, "stprune_d": s.stprune_d, "dtm_p": s.dtm_p,
            "dtm_beta": s.dtm_beta}  # fmt: skip


def _exact(r, s, ctx):
    """The knob at the retention itself, else a per-video search of it (``GuessThenSearch``)."""

    def make(value: float):
        return FastVidReducer(_params(dataclasses.replace(s, fastvid_ratio=value)))

    return GuessThenSearch(make, (1e-4, 1.0), r, EXACT_TOL)


SPEC = MethodSpec(
    name="fastvid",
    build=lambda s, ctx: FastVidReducer(_params(s)),
    stages=(StageSpec("input", frozenset({"hidden", "grid"})),),
    settings=FastVidSettings,
    knobs=("fastvid_ratio",),
    budgets={50: {"fastvid_ratio": 0.5}, 30: {"fastvid_ratio": 0.3}},
    exact=_exact,
    position_rule="original",
    default_layer=0,
    params=baseline_params("fastvid_ratio", _options),
    reference="Shen et al., NeurIPS 2025 (github.com/LunarShen/FastVID)",
)
