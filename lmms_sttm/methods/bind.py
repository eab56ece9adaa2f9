"""A method bound to one run: its settings from ``--model_args``, its budget, its layer, one task.

``method_settings(spec, raw)`` builds the method's own settings object from its ``--model_args``
keys; ``check_budget_args`` applies the rules every method shares (``budget=`` picks the authors'
settings, ``budget_mode=exact`` with ``retention=`` keeps that share of each video, or the knobs are
given by hand); ``bind`` turns spec + settings + task into a ``MethodInstance``: what the engine runs
in prefill (``prefill``), at decode time (``decode``), the parameters recorded with every answer,
the layer k and whether a prefilled prefix may serve every question.
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from typing import Any

from lmms_sttm.methods.spec import BuildContext, MethodSpec

EXACT_TOL = 0.01


@dataclass(frozen=True)
class MethodInstance:
    """What one method does on one task of one model.

    Attributes:
        spec: the method.
        prefill: reducer or staged method run in prefill (None keeps every token).
        decode: decode-time stage (``engine/kv_pruning.KvPruning``) or None.
        params: recorded with every answer (``budget_mode`` and ``retention`` always).
        layer: k, where a one-stage reducer runs.
    """

    spec: MethodSpec
    prefill: Any
    decode: Any
    params: dict
    layer: int

    @property
    def query_agnostic(self) -> bool:
        return self.spec.query_agnostic


def _none(value):
    return None if isinstance(value, str) and value.lower() in ("none", "null", "") else value


def method_settings(spec: MethodSpec, raw: dict) -> Any:
    """The method's settings object from its ``--model_args`` keys (``raw``: already checked to be
    fields of ``spec.settings``); lmms-eval's ints become floats where the default is a float."""
    if spec.settings is None:
        if raw:
            raise ValueError(f"method={spec.name} takes no model_args of its own, got {sorted(raw)}")
        return None
    clean = {}
    floats = {f.name for f in dataclasses.fields(spec.settings) if "float" in str(f.type)}
    for key, value in raw.items():
        value = _none(value)
        if key in floats and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        clean[key] = value
    try:
        return spec.settings(**clean)
    except TypeError as e:
        raise ValueError(f"method={spec.name}: bad model_args {sorted(raw)}: {e}") from e


def _set_knobs(spec: MethodSpec, settings) -> list[str]:
    return [k for k in spec.knobs if getattr(settings, k) is not None]


def check_budget_args(spec: MethodSpec, settings, budget, budget_mode: str, retention) -> None:
    """The budget rules shared by every method; raises ``ValueError`` naming the fix."""
    name = spec.name
    knobs = _set_knobs(spec, settings) if settings is not None else []
    if spec.keeps_every_token:
        if budget is not None or retention is not None or knobs:
            raise ValueError(
                f"method={name} keeps every token: do not pass budget, retention or method settings"
            )
        if budget_mode != "native":
            raise ValueError(f"method={name} keeps every token: budget_mode=exact does not apply")
        return
    hand = " and ".join(f"{k}=" for k in spec.knobs)
    if budget_mode == "exact":
        r = retention
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 < r <= 1:
            raise ValueError(f"budget_mode=exact needs retention= in (0, 1] (e.g. 0.3), got {r!r}")
        if budget is not None or knobs:
            raise ValueError(
                f"budget_mode=exact takes retention= only: do not pass budget{', ' + hand if hand else ''}"
            )
        if spec.exact is None and spec.knob is None:
            raise ValueError(f"method={name} declares no exact-budget knob: budget_mode=exact does not apply")
        return
    if retention is not None:
        raise ValueError(
            "retention= needs budget_mode=exact (native mode uses budget= or the method's settings)"
        )
    accepted = sorted(spec.budgets, reverse=True)
    if budget is not None:
        if budget not in spec.budgets:
            raise ValueError(f"model_args budget={budget!r} is not accepted; use one of {accepted}")
        if knobs:
            raise ValueError(f"pass either budget= (the authors' settings) or {hand}, not both")
    elif len(knobs) != len(spec.knobs):
        options = [f"budget= (one of {accepted})"] if accepted else []
        options += [f"both {hand}" if len(spec.knobs) > 1 else hand] if spec.knobs else []
        options += ["budget_mode=exact with retention="] if (spec.exact or spec.knob) else []
        raise ValueError(f"method={name} needs {' or '.join(options)}")


def _reads_settings(values) -> bool:
    """A budget function of ``(ctx, settings)`` rather than of ``(ctx)`` alone."""
    try:
        params = list(inspect.signature(values).parameters.values())
    except (TypeError, ValueError):  # a builtin without a signature: the documented (ctx) form
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in params)


def _budget_settings(spec: MethodSpec, settings, ctx: BuildContext):
    values = spec.budgets[ctx.budget]
    if callable(values):
        values = values(ctx, settings) if _reads_settings(values) else values(ctx)
    return dataclasses.replace(settings, **dict(values))


def default_params(spec: MethodSpec, settings, ctx: BuildContext) -> dict:
    """A method's recorded parameters when its spec gives no ``params``: its settings' fields,
    the budget and the budget mode."""
    own = dataclasses.asdict(settings) if settings is not None else {}
    return {**own, "budget": ctx.budget, "budget_mode": ctx.budget_mode, "retention": ctx.retention}


def bind(spec: MethodSpec, settings, ctx: BuildContext, decode_positions: str = "authors") -> MethodInstance:
    """``spec`` on one task: raises ``ValueError`` for settings it cannot serve (before any forward)."""
    if spec.keeps_every_token:
        return MethodInstance(spec, None, None, {}, ctx.layer)
    spec.check_splits(ctx.layer)
    if ctx.budget_mode == "native" and ctx.budget is not None:
        settings = _budget_settings(spec, settings, ctx)
    if ctx.budget_mode == "exact":
        prefill = (
            spec.exact(ctx.retention, settings, ctx)
            if spec.exact is not None
            else knob_search(spec, settings, ctx)
        )
    else:
        prefill = spec.build(settings, ctx) if spec.reduces else None
    if prefill is not None:
        if not callable(prefill) and not callable(getattr(prefill, "start", None)):
            raise ValueError(
                f"method={spec.name}: build returned {prefill!r}, not a reducer or staged method"
            )
        rule = spec.position_rule_for(ctx.family)
        if rule is not None and not callable(getattr(prefill, "start", None)):
            prefill.position_rule = rule
    decode = spec.decode(settings, ctx) if spec.decode is not None else None
    params = spec.params(settings, ctx) if spec.params is not None else default_params(spec, settings, ctx)
    if ctx.budget_mode == "exact" and "tolerance" not in params:
        params["tolerance"] = EXACT_TOL
    params["decode_positions"] = decode_positions
    return MethodInstance(spec, prefill, decode, params, ctx.layer)


def knob_search(spec: MethodSpec, settings, ctx: BuildContext):
    """``budget_mode=exact`` for a method that declares a monotone ``knob``: per video, the knob
    value whose plan keeps ``retention`` of the tokens (``merging/budget.KnobSearch``)."""
    from lmms_sttm.merging.budget import KnobSearch

    def make(value: float):
        return spec.build(dataclasses.replace(settings, **{spec.knob: value}), ctx)

    return KnobSearch(make, spec.knob_range, spec.knob_increases, ctx.retention, EXACT_TOL)
