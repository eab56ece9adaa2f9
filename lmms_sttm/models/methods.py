"""Reduction methods by name: the ``method=`` model argument -> a reducer for one task.

Each entry builds the engine reducer (``(hidden [T*H*W, C], grid) -> Reduction``) for a task from
the model's settings, and says whether the method ignores the question (so one prefilled video
prefix may serve every question on it). ``none`` has no reducer.
"""

from __future__ import annotations

from dataclasses import dataclass

from lmms_sttm.engine.reducer import SttmReducer
from lmms_sttm.models.paper_settings import paper_thresholds
from lmms_sttm.models.settings import ModelSettings


@dataclass(frozen=True)
class MethodPlan:
    """What one method does on one task: the reducer (None keeps every token) and its parameters."""

    reducer: object | None
    params: dict
    query_agnostic: bool = True


def plan_for(settings: ModelSettings, paper_model: str, task: str) -> MethodPlan:
    """The method's plan for ``task``; raises ``ValueError`` for settings the method cannot serve."""
    if settings.method == "none":
        return MethodPlan(None, {})
    if settings.method == "sttm":
        if settings.budget is None:
            tau_s, tau_t = settings.tau_s, settings.tau_t
        else:
            tau_s, tau_t = paper_thresholds(paper_model, settings.budget, task)
        reducer = SttmReducer(tau_s, tau_t, root_level=settings.root_level)
        return MethodPlan(reducer, {"tau_s": tau_s, "tau_t": tau_t, "root_level": settings.root_level})
    raise ValueError(f"method={settings.method!r} has no reducer")
