"""An attention-point stage writes its reduced tokens into the tensor that enters the layer's
``post_attention_layernorm``, relying on that tensor being the residual the MLP output is added to.
Per family, the decoder layer's output must equal that tensor + the MLP's output, bit for bit."""

from __future__ import annotations

import pytest
import torch

from lmms_sttm.conformance.tiny import FAMILIES, build_model, make_inputs


@pytest.mark.parametrize("family", FAMILIES)
def test_layer_output_is_post_attention_input_plus_mlp(family):
    model = build_model(family)
    layer = model.model.language_model.layers[1]
    seen = {}
    hooks = [
        layer.post_attention_layernorm.register_forward_pre_hook(
            lambda m, a: seen.__setitem__("residual", a[0])
        ),
        layer.mlp.register_forward_hook(lambda m, a, out: seen.__setitem__("mlp", out)),
        layer.register_forward_hook(
            lambda m, a, out: seen.__setitem__("out", out[0] if isinstance(out, tuple) else out)
        ),
    ]
    try:
        with torch.no_grad():
            model(**make_inputs(family).inputs, use_cache=False)
    finally:
        for h in hooks:
            h.remove()
    assert torch.equal(seen["out"], seen["residual"] + seen["mlp"])
