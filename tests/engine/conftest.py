"""Fixtures of the engine tests (helpers live in ``engine_helpers``)."""

from __future__ import annotations

import pytest
import torch

from tests.engine.engine_helpers import build_model

_MODELS: dict = {}


@pytest.fixture
def tiny():
    """``tiny(family, attn="sdpa")`` -> a cached tiny model (tests must remove their engines)."""

    def get(family: str, attn: str = "sdpa", large: bool = False) -> torch.nn.Module:
        key = (family, attn, large)
        if key not in _MODELS:
            _MODELS[key] = build_model(family, attn, large=large)
        return _MODELS[key]

    return get


@pytest.fixture
def engines():
    """Collects engines created in a test and removes them afterwards, even on failure."""
    made = []
    yield made
    for engine in made:
        engine.remove()
