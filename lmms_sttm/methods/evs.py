"""``method=evs``: vLLM's Efficient Video Sampling (``vllm/multimodal/evs.py``,
``--video-pruning-rate``; Bagrov et al., NVIDIA, arXiv 2510.14624): drop the tokens most similar
(cosine) to the same position of the previous frame; the first frame is kept whole
(``merging/evs.py``). Runs on the visual features as they enter the LLM (layer 0), like vLLM.

``--model_args``: ``video_pruning_rate`` (vLLM's ``q``; ``budget=50|30`` sets 0.5 / 0.7, the rate
that keeps that share). Query-agnostic. Positions: the family's rule (Qwen survivors keep their
M-RoPE ids, as vLLM's ``compute_mrope_for_media`` gives them; LLaVA renumbers).
"""

from __future__ import annotations

from dataclasses import dataclass

from lmms_sttm.merging.budget import ExactBudget
from lmms_sttm.merging.evs import EvsReducer
from lmms_sttm.methods.bind import EXACT_TOL
from lmms_sttm.methods.recorded import baseline_params
from lmms_sttm.methods.spec import MethodSpec, StageSpec


@dataclass(frozen=True)
class EvsSettings:
    video_pruning_rate: float | None = None

    def __post_init__(self) -> None:
        q = self.video_pruning_rate
        if q is not None and (isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 <= q < 1):
            raise ValueError(f"model_args video_pruning_rate={q!r} must be in [0, 1)")


SPEC = MethodSpec(
    name="evs",
    build=lambda s, ctx: EvsReducer(s.video_pruning_rate),
    stages=(StageSpec("input", frozenset({"hidden", "grid"})),),
    settings=EvsSettings,
    knobs=("video_pruning_rate",),
    budgets={50: {"video_pruning_rate": 0.5}, 30: {"video_pruning_rate": 0.7}},
    exact=lambda r, s, ctx: ExactBudget(EvsReducer(min(max(1 - r, 0.0), 0.999999)), r, EXACT_TOL),
    default_layer=0,
    params=baseline_params("video_pruning_rate"),
    reference="vLLM EVS (vllm-project/vllm vllm/multimodal/evs.py; Bagrov et al., arXiv 2510.14624)",
)
