"""``check_method`` on a method that reads the vision tower's attention: every rule's runs (the
engine's, the by-hand one, the prefix reuse and the worker processes) get the tiny tower's scores
of the declared kind, equal to the hook's on the same pixels."""

from __future__ import annotations

import torch

from lmms_sttm.check_method import check
from lmms_sttm.conformance import rules
from lmms_sttm.conformance.tiny import make_inputs
from lmms_sttm.conformance.vision import tower_scores
from lmms_sttm.methods import registry

READER = "tests.methods.broken_methods:VISION_READER"


def test_a_method_that_needs_the_scores_passes_every_rule_with_them():
    """The reader raises without scores, so a rule run without them would fail; two processes too."""
    report = check(READER, families=("qwen2_5_vl",), processes=True, timing_channels=0)
    assert report["ok"], report["first_failure"]
    assert report["vision_scores"] == {"qwen2_5_vl": "frame_query"}
    assert set(report["rules"]) >= {"by_hand_positions", "query_agnostic", "processes"}
    report = check(READER, families=("llava_onevision", "internvl"), processes=False, timing_channels=0)
    assert report["ok"], report["first_failure"]
    assert report["vision_scores"] == {"llava_onevision": "frame_query", "internvl": "frame_query"}


def test_case_scores_are_the_towers_of_the_declared_kind_for_the_current_video():
    spec = registry.get("fastvid")
    case = rules.make_case("qwen2_vl", spec)
    try:
        scores = case.vision_scores()
        t, h, w = case.video.grid
        assert scores.shape == (t, h * w)
        # frame_query: one softmax per temporal patch over its merge units (received ones sum to 1/4)
        assert torch.allclose(scores.sum(dim=1), torch.ones(t), atol=1e-5)
        received = tower_scores(case.model, "qwen2_vl", case.video.inputs, "received")
        assert torch.allclose(received.sum(dim=1), torch.full((t,), 0.25), atol=1e-5)
        assert case.context(spec, budget=30).vision_attention is True
        case.video = make_inputs("qwen2_vl", seed=1, large=True)  # the worker's swap: scores follow
        assert not torch.equal(case.vision_scores(), scores)
    finally:
        case.engine.remove()
    plain = rules.make_case("qwen2_vl", registry.get("sttm"))
    try:
        assert plain.vision_scores() is None and plain.context(spec, budget=30).vision_attention is False
    finally:
        plain.engine.remove()
