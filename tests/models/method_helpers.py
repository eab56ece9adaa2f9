"""Binding a method from model settings outside a model class (what ``SttmVideoModel.method_for`` does)."""

from __future__ import annotations

from lmms_sttm.methods.bind import MethodInstance, bind
from lmms_sttm.methods.spec import BuildContext
from lmms_sttm.models.settings import ModelSettings


def plan_for(settings: ModelSettings, paper_model: str, task: str, family: str = "llava") -> MethodInstance:
    """``settings``' method on ``task`` for a 28-layer model of ``family`` (layer: merge_layer, the
    method's default or 2)."""
    spec = settings.spec
    layer = settings.merge_layer
    if layer is None:
        layer = spec.default_layer if spec.default_layer is not None else 2
    ctx = BuildContext(
        family, paper_model, task, layer, 28, settings.budget, settings.budget_mode, settings.retention
    )
    return bind(spec, settings.method_settings, ctx, settings.decode_positions)
