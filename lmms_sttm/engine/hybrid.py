"""Hybrid decoders (Qwen3.5 / Qwen3.6): Gated DeltaNet layers next to full-attention layers.

Only a full-attention layer has attention weights to read. A stage that reads the last prompt
token's attention (FastV, the inner stages of HoliTom and FlashVID, FrameFusion's prunes) and DyCoke's
decode-time KV pruning take it from **the nearest full-attention layer at or after the layer they
would read** (``layer - 1`` for a stage on a layer's input, the layer itself for a stage inside
it), and the stage moves with it: an input stage then runs right after that attention layer.
Example (8 layers, a full-attention layer every 4: layers 3 and 7): FastV at k = 2 would read
layer 1, a Gated DeltaNet layer; it reads layer 3 and reduces the input of layer 4. A setting with
no such layer (or none with a layer after it) is refused with a ``ValueError``. Stages that read no
attention (STTM, ToMe, pooling, ...) run where they are asked, on a linear or an attention layer.

The order in which the kept tokens enter a Gated DeltaNet layer changes its recurrent state. The
engine feeds them in sequence order, as every family does (each block's kept tokens in place,
ordered by the position of the token each one takes its position from), so that the recurrent
layers after the reduction see the video in the same temporal order the layers before it saw.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from lmms_sttm.engine.query_aware import needs_attention
from lmms_sttm.merging.reduction import Reduction
from lmms_sttm.merging.stage import Stage

FULL, LINEAR = "full_attention", "linear_attention"


def layer_kinds(text_model: nn.Module) -> list[str]:
    """``config.layer_types`` of a decoder (every layer ``full_attention`` when it has none)."""
    config = text_model.config
    return list(getattr(config, "layer_types", None) or [FULL] * config.num_hidden_layers)


def is_hybrid(kinds: list[str]) -> bool:
    return LINEAR in kinds


def attention_layer_from(kinds: list[str], index: int, what: str = "attention scores") -> int:
    """The first full-attention layer ``>= index``; raises ``ValueError`` when there is none."""
    for i in range(max(index, 0), len(kinds)):
        if kinds[i] == FULL:
            return i
    full = [i for i, kind in enumerate(kinds) if kind == FULL]
    raise ValueError(
        f"{what}: layer {index} is a linear-attention layer and no full-attention layer follows it "
        f"(full-attention layers: {full}); choose a layer <= {full[-1] if full else 'none'}"
    )


def hybrid_stage(stage: Stage, kinds: list[str]) -> Stage:
    """``stage`` moved to read attention from a full-attention layer (unchanged when it reads none
    or already does); raises ``ValueError`` when no full-attention layer can serve it."""
    if not stage.needs_attention:
        return stage
    read = stage.layer if stage.point == "attention" else stage.layer - 1
    attention = attention_layer_from(kinds, read, f"a stage at layer {stage.layer} reading attention")
    if attention == read:
        return stage
    layer = attention if stage.point == "attention" else attention + 1
    if layer >= len(kinds) or (stage.point == "attention" and layer + 1 >= len(kinds)):
        raise ValueError(
            f"a stage at layer {stage.layer} reads attention; the nearest full-attention layer is "
            f"{attention}, with no layer after it to reduce: choose an earlier layer"
        )
    return dataclasses.replace(stage, layer=layer)


def planned_stages(method, num_layers: int, layer: int) -> list[Stage]:
    """The stages ``method`` announces before it runs: a staged method's ``planned_stages(num_layers,
    layer)`` when it has one (TwoStage: HoliTom, FlashVID), one stage at ``layer`` for a plain
    reducer; [] when they depend on the data (FrameFusion): those are placed as they come."""
    if method is None:
        return []
    if callable(getattr(method, "start", None)):
        plan = getattr(method, "planned_stages", None)
        return list(plan(num_layers, layer)) if plan is not None else []
    return [Stage(layer, needs_attention(method))]


def check_placement(method, decode, kinds: list[str], layer: int) -> None:
    """Raises ``ValueError`` (before any video) when a stage of ``method`` or the decode-time KV
    pruning ``decode`` (its ``layer``) reads attention that no full-attention layer of a hybrid
    decoder can serve; nothing on a decoder without linear-attention layers."""
    if not is_hybrid(kinds):
        return
    for stage in planned_stages(method, len(kinds), layer):
        hybrid_stage(stage, kinds)
    if decode is not None:
        kv_pruning_layer(kinds, decode.layer)


def kv_pruning_layer(kinds: list[str], layer: int) -> int:
    """The first layer DyCoke's KV pruning set at ``layer`` prunes: right after the full-attention
    layer its scores come from (``layer - 1``, or the nearest full-attention layer after it);
    ``ValueError`` when that leaves no layer to prune."""
    read = attention_layer_from(kinds, layer - 1, "KV pruning scores")
    if read + 1 >= len(kinds):
        raise ValueError(
            f"KV pruning at layer {layer}: its scores come from layer {read}, the last layer, "
            "which leaves no layer to prune; choose an earlier layer"
        )
    return read + 1


class HybridRun:
    """A method's run on a hybrid decoder: each stage as ``hybrid_stage`` places it."""

    def __init__(self, run, kinds: list[str]) -> None:
        self._run, self._kinds = run, kinds

    def next_stage(self) -> Stage | None:
        stage = self._run.next_stage()
        return None if stage is None else hybrid_stage(stage, self._kinds)

    def run(self, hidden: torch.Tensor, grid, context) -> Reduction:
        return self._run.run(hidden, grid, context)
