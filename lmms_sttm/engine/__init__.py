"""Runs any token reduction inside transformers' own decoders, and reuses one prefill per video.

    from lmms_sttm.engine import apply_reduction, prefill, answer
    from lmms_sttm.merging.sttm import SttmReducer

    engine = apply_reduction(model, layer=2)        # hooks on this instance, by config.model_type
    prefix = prefill(engine, prefix_inputs, reducer=SttmReducer(tau_s, tau_t))
    result = answer(engine, prefix, question_ids, max_new_tokens=16, eos_token_id=eos)
    engine.remove()

A method is a plain reducer (one stage at layer k) or a staged method (``engine/stages.py``:
stages at chosen layers, e.g. ``merging.framefusion_authors.FrameFusion``); ``prefill`` and
``generate`` take either. ``apply_reduction(model, layer, decode_positions="compact")`` continues
generated tokens from each segment's own length instead of the authors' ``N + i``.

Lower level: ``with engine.video(grid, reducer): model(...)`` or ``model.generate(...)``.
"""

from lmms_sttm.engine.families import FAMILIES, Family, family_of
from lmms_sttm.engine.patch import ReductionEngine, apply_reduction, engine_of, remove_reduction
from lmms_sttm.engine.reducer import Reducer, check_reduction, identity_reducer
from lmms_sttm.engine.segmented_cache import SegmentedCache
from lmms_sttm.engine.session import Answer, CallStats, Prefix, answer, generate, prefill
from lmms_sttm.engine.stages import Stage, StageRun
from lmms_sttm.engine.video import ReductionRecord, VideoSpec

__all__ = [
    "FAMILIES",
    "Answer",
    "CallStats",
    "Family",
    "Prefix",
    "Reducer",
    "ReductionEngine",
    "ReductionRecord",
    "SegmentedCache",
    "Stage",
    "StageRun",
    "VideoSpec",
    "answer",
    "apply_reduction",
    "check_reduction",
    "engine_of",
    "family_of",
    "generate",
    "identity_reducer",
    "prefill",
    "remove_reduction",
]
