"""The matching head's weights, recomputed from the captured layer input, equal the model's own."""

import torch

from lmms_sttm.organism.matching import MATCH_HEAD, MATCH_LAYER, attention_input, match_attention


def test_match_attention_equals_the_eager_attention_weights(tmp_path):
    from lmms_sttm.organism.model import new_model

    model, _ = new_model(tmp_path / "m", 3)
    lm = model.model.language_model
    with torch.no_grad():  # weights far from the init, so that the head is not near-uniform
        for p in lm.layers[MATCH_LAYER].self_attn.parameters():
            p.mul_(8.0)
    ids = torch.randint(0, 200, (3, 41), generator=torch.Generator().manual_seed(0))
    match = torch.tensor([[40, 7], [25, 25], [12, 0]])
    with torch.no_grad(), attention_input(lm) as seen:
        lm(input_ids=ids)
        ours = match_attention(lm, seen, match)
    model.set_attn_implementation("eager")
    with torch.no_grad():
        weights = lm(input_ids=ids, output_attentions=True).attentions[MATCH_LAYER][:, MATCH_HEAD]
    want = weights[torch.arange(3), match[:, 0], match[:, 1]]
    torch.testing.assert_close(ours, want, rtol=1e-5, atol=1e-6)
    assert want.max() > 0.05 and want.min() < want.max() / 2  # not a uniform row: a real comparison
    assert not lm.layers[MATCH_LAYER].self_attn._forward_pre_hooks  # the hook is gone
