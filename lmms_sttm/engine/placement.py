"""Inputs of a hook that runs a decoder layer's own submodules, moved to that layer's device.

A forward pre-hook runs before accelerate's ``AlignDevicesHook`` has moved the layer's inputs, so
under ``device_map=auto`` the hidden states entering layer ``k - 1`` may still sit on the previous
layer's GPU. Hooks that call ``input_layernorm`` / ``q_proj`` / ``k_proj`` themselves move their
inputs first: ``hidden, rotary = on_layer_device(layer, hidden, rotary)``.
"""

from __future__ import annotations

import torch
from torch import nn


def layer_device(layer: nn.Module) -> torch.device:
    """The device of ``layer``'s first parameter (a decoder layer sits on one device)."""
    return next(layer.parameters()).device


def _move(value, device: torch.device):
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, tuple):
        return tuple(_move(v, device) for v in value)
    return value


def on_layer_device(layer: nn.Module, *values):
    """``values`` (tensors or tuples of tensors, e.g. rotary ``(cos, sin)``) on ``layer``'s device."""
    device = layer_device(layer)
    return tuple(_move(v, device) for v in values)
