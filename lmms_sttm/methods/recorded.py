"""The parameters the built-in baselines record with every answer (one shape for all of them)."""

from __future__ import annotations

from collections.abc import Callable

from lmms_sttm.methods.bind import EXACT_TOL
from lmms_sttm.methods.spec import BuildContext


def baseline_params(knob: str, options: Callable[[object, BuildContext], dict] | None = None):
    """``params`` for a spec: native ``{knob, budget, budget_mode, retention, **options}``, exact
    ``{budget_mode, retention, tolerance, **options}``."""

    def params(settings, ctx: BuildContext) -> dict:
        mode = {"budget_mode": ctx.budget_mode, "retention": ctx.retention}
        extra = options(settings, ctx) if options is not None else {}
        if ctx.budget_mode == "exact":
            return {**mode, "tolerance": EXACT_TOL, **extra}
        return {knob: getattr(settings, knob), "budget": ctx.budget, **mode, **extra}

    return params
