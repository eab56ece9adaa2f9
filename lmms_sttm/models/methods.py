"""Reduction methods by name: the ``method=`` model argument -> a reducer for one task.

Each entry builds the engine reducer (``(hidden [T*H*W, C], grid) -> Reduction``, or a query-aware
one that also reads the last prompt token's attention, ``engine/query_aware.py``) for a task from
the model's settings, and says whether the method ignores the question (so one prefilled video
prefix may serve every question on it). ``none`` has no reducer.

``budget=50|30`` selects the STTM authors' settings per method (``NATIVE``); ``budget_mode=exact``
with ``retention=R`` makes every method keep ``R`` of each video's visual tokens within one point
(``merging/budget.py``). ``params`` always carries ``budget_mode`` and ``retention``.
"""

from __future__ import annotations

from dataclasses import dataclass

from lmms_sttm.engine.kv_pruning import MODES as DYCOKE_KV_MODES
from lmms_sttm.engine.kv_pruning import KvPruning
from lmms_sttm.engine.reducer import SttmReducer
from lmms_sttm.merging.budget import ExactBudget, SttmExactReducer
from lmms_sttm.merging.dycoke import DycokeStage1Reducer
from lmms_sttm.merging.fastv import FastVReducer
from lmms_sttm.merging.framefusion import FrameFusionReducer
from lmms_sttm.merging.framefusion_authors import FrameFusion
from lmms_sttm.merging.pool import PoolReducer
from lmms_sttm.merging.tome import TomeReducer
from lmms_sttm.models.paper_settings import paper_thresholds
from lmms_sttm.models.settings import TOKEN_ORDER_METHODS, ModelSettings


@dataclass(frozen=True)
class MethodPlan:
    """What one method does on one task: the reducer (None keeps every token), its parameters and,
    for DyCoke, the decode-time KV pruning (``engine/kv_pruning.py``)."""

    reducer: object | None
    params: dict
    query_agnostic: bool = True
    kv_pruning: KvPruning | None = None


#: the STTM authors' baseline settings by budget (sttm-method.md §11); pool is ours (keep fraction)
NATIVE = {
    "tome": ("prune", {50: 0.50, 30: 0.70}),
    "dycoke_stage1": ("prune", {50: 0.70, 30: 0.925}),
    "dycoke": ("prune", {50: 0.70, 30: 0.925}),
    "fastv": ("evict", {50: 0.50, 30: 0.70}),
    "framefusion": ("cost", {50: 0.50, 30: 0.30}),
    "pool": ("keep", {50: 0.50, 30: 0.30}),
}
QUERY_AWARE = ("fastv", "framefusion", "dycoke")
#: DyCoke stage 2 as the STTM authors ran it (``--dycoke_l 3 --dycoke_p 0.8`` at both budgets, §11)
DYCOKE_KV = DYCOKE_KV_MODES["authors"]
EXACT_TOL = 0.01


#: eng26b: the position rule of each method as its authors ran it on LLaVA (1-D RoPE); the others
#: renumber 0..N'-1. Qwen2-VL always keeps original M-RoPE ids (engine/stages.py).
ORIGINAL_POSITIONS = ("fastv", "framefusion")


def _with_position_rule(reducer, method: str):
    """Sets the method's ``position_rule`` on its reducer instance (read by the engine)."""
    if method in ORIGINAL_POSITIONS and reducer is not None:
        reducer.position_rule = "original"
    return reducer


def _native(method: str, knob: str, value: float, order: str, framefusion: str = "authors"):
    if method == "tome":
        return TomeReducer(prune=value, order=order)
    if method in ("dycoke_stage1", "dycoke"):
        return DycokeStage1Reducer(prune=value, order=order)
    if method == "fastv":
        return FastVReducer(evict=value)
    if method == "framefusion":
        return FrameFusion(value) if framefusion == "authors" else FrameFusionReducer(cost=value)
    return PoolReducer(value)


def _merge_options(settings: ModelSettings) -> dict:
    """STTM's fidelity options (``merge_video`` keywords; the authors' computation by default)."""
    return {"union_find": settings.union_find, "merge_dtype": settings.merge_dtype}


def _exact(method: str, retention: float, root_level: int, order: str, merge_options: dict):
    if method == "sttm":
        return SttmExactReducer(retention, EXACT_TOL, root_level=root_level, merge_options=merge_options)
    if method == "tome":
        inner = TomeReducer(retention, order=order)
    elif method in ("dycoke_stage1", "dycoke"):
        inner = DycokeStage1Reducer(keep=retention, order=order)
    elif method == "fastv":
        inner = FastVReducer(retention)
    elif method == "framefusion":
        inner = FrameFusionReducer(keep=retention)
    else:
        inner = PoolReducer(retention, tol=EXACT_TOL / 2)
    return ExactBudget(inner, retention, EXACT_TOL)


def _engine_params(settings: ModelSettings) -> dict:
    """eng26b: decode positions for every reduced run, the FrameFusion variant for FrameFusion."""
    out = {"decode_positions": settings.decode_positions}
    if settings.method == "framefusion":  # the exact-budget trim runs the one-stage variant
        out["framefusion"] = "single_layer" if settings.budget_mode == "exact" else settings.framefusion
    return out


def plan_for(settings: ModelSettings, paper_model: str, task: str) -> MethodPlan:
    """The method's plan for ``task``; raises ``ValueError`` for settings the method cannot serve."""
    method = settings.method
    if method == "none":
        return MethodPlan(None, {})
    query_agnostic = method not in QUERY_AWARE
    kv = DYCOKE_KV_MODES[settings.dycoke_kv or "authors"] if method == "dycoke" else None
    extra = (
        {
            "dycoke_kv": settings.dycoke_kv or "authors", "kv_layer": kv.layer, "kv_prune": kv.prune,
            "kv_similarity": kv.similarity, "kv_span": kv.span,
        }
        if kv is not None
        else {}
    )  # fmt: skip
    order = settings.token_order or "authors"
    if method in TOKEN_ORDER_METHODS:
        extra = {"token_order": order, **extra}
    mode = {"budget_mode": settings.budget_mode, "retention": settings.retention}
    if settings.budget_mode == "exact":
        exact = _exact(method, settings.retention, settings.root_level, order, _merge_options(settings))
        reducer = _with_position_rule(exact, method)
        params = {**mode, "tolerance": EXACT_TOL, **extra, **_engine_params(settings)}
        if method == "sttm":
            params.update(
                root_level=settings.root_level, direction=list(reducer.direction), **_merge_options(settings)
            )
        return MethodPlan(reducer, params, query_agnostic, kv)
    if method == "sttm":
        if settings.budget is None:
            tau_s, tau_t = settings.tau_s, settings.tau_t
        else:
            tau_s, tau_t = paper_thresholds(paper_model, settings.budget, task)
        options = _merge_options(settings)
        reducer = SttmReducer(tau_s, tau_t, root_level=settings.root_level, **options)
        params = {"tau_s": tau_s, "tau_t": tau_t, "root_level": settings.root_level, **options, **mode}
        return MethodPlan(reducer, {**params, **_engine_params(settings)})
    if method in NATIVE:
        knob, values = NATIVE[method]
        value = values[settings.budget]
        params = {knob: value, "budget": settings.budget, **mode, **extra, **_engine_params(settings)}
        reducer = _with_position_rule(_native(method, knob, value, order, settings.framefusion), method)
        return MethodPlan(reducer, params, query_agnostic, kv)
    raise ValueError(f"method={method!r} has no reducer")
