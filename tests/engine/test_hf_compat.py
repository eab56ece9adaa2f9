"""The transformers seam: the cache goes in and comes out under the installed version's name, and
a decoder that stops using the engine's cache stops the run (never wrong numbers)."""

from __future__ import annotations

import pytest
import transformers
from packaging.version import Version

from lmms_sttm.engine import apply_reduction, hf_compat, prefill
from tests.engine.engine_helpers import FAMILIES, build_model, make_inputs, pair_merge_reducer, text_model_of

NEW_NAME = Version(transformers.__version__) >= Version("5.24.0.dev0")  # measured: 5.23 old, 5.24+ new


def test_cache_name_is_the_installed_versions():
    model = build_model(FAMILIES[0])
    text = text_model_of(model)
    expected = "cache" if NEW_NAME else "past_key_values"
    assert {hf_compat.cache_name(m) for m in (model, text, text.layers[0])} == {expected}


def test_read_and_write_use_one_name():
    layer = text_model_of(build_model(FAMILIES[0])).layers[0]
    ours, theirs = object(), object()
    assert hf_compat.read_cache({"past_key_values": ours}) is ours
    assert hf_compat.read_cache({"cache": theirs, "past_key_values": ours}) is theirs  # as transformers does
    kwargs = {"cache": theirs, "past_key_values": theirs, "use_cache": True}
    hf_compat.write_cache(layer, kwargs, ours)
    assert kwargs == {hf_compat.cache_name(layer): ours, "use_cache": True}


def _drift_message() -> str:
    return rf"transformers {transformers.__version__} is installed.*transformers>=5\.23,<5\.26"


@pytest.mark.parametrize("family", FAMILIES)
def test_a_layer_that_ignores_the_cache_is_an_error(family):
    model, video = build_model(family), make_inputs(family)
    for layer in text_model_of(model).layers:
        attention = layer.self_attn.forward

        def ignore_cache(*args, _attention=attention, **kwargs):
            for name in hf_compat.NAMES:
                kwargs.pop(name, None)
            return _attention(*args, **kwargs)

        layer.self_attn.forward = ignore_cache
    engine = apply_reduction(model, 1)
    try:
        with pytest.raises(hf_compat.TransformersDrift, match=rf"holds no keys.*{_drift_message()}"):
            prefill(engine, video.inputs, pair_merge_reducer, video.grid)
    finally:
        engine.remove()


def test_a_decoder_that_gets_the_cache_under_a_stale_name_is_an_error(monkeypatch):
    # The engine passes its cache under a name the decoder does not take: the decoder makes its own
    # cache and hands that to its layers (what transformers 5.25 did before this seam).
    family = FAMILIES[0]
    model, video = build_model(family), make_inputs(family)
    text = text_model_of(model)
    real = hf_compat.cache_name
    monkeypatch.setattr(hf_compat, "cache_name", lambda m: "stale_cache" if m is text else real(m))
    engine = apply_reduction(model, 1)
    try:
        with pytest.raises(hf_compat.TransformersDrift, match=rf"did not receive.*{_drift_message()}"):
            prefill(engine, video.inputs, pair_merge_reducer, video.grid)
    finally:
        engine.remove()
