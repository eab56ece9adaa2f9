"""``method=`` names -> plans: the authors' 50/30 settings, exact budgets, query-awareness, and a
query-aware method running in a model class (prefilled per question)."""

from __future__ import annotations

import pytest
import torch

from lmms_sttm.merging.budget import ExactBudget, SttmExactReducer
from lmms_sttm.models.settings import ModelSettings
from tests.models.method_helpers import plan_for

NATIVE = {
    "tome": ("prune", 0.50, 0.70, True),
    "dycoke_stage1": ("prune", 0.70, 0.925, True),
    "fastv": ("evict", 0.50, 0.70, False),
    "framefusion": ("cost", 0.50, 0.30, False),
    "pool": ("keep", 0.50, 0.30, True),
}


def _plan(**kw):
    return plan_for(ModelSettings.from_model_args(pretrained="/c", **kw), "llava_video_7b", "videomme_sttm")


@pytest.mark.parametrize("method", sorted(NATIVE))
def test_budget_selects_the_authors_settings(method):
    knob, at50, at30, agnostic = NATIVE[method]
    for budget, value in ((50, at50), (30, at30)):
        plan = _plan(method=method, budget=budget)
        assert plan.params[knob] == value and plan.params["budget_mode"] == "native"
        assert plan.query_agnostic is agnostic
        assert getattr(plan.prefill, "needs_attention", False) is (not agnostic)


@pytest.mark.parametrize("method", ["sttm", *sorted(NATIVE)])
def test_exact_mode_labels_its_params(method):
    plan = _plan(method=method, budget_mode="exact", retention=0.3)
    assert plan.params["budget_mode"] == "exact" and plan.params["retention"] == 0.3
    assert isinstance(plan.prefill, SttmExactReducer if method == "sttm" else ExactBudget)
    x = torch.randn(4 * 14 * 14, 16)
    ctx = type("Ctx", (), {"scores": torch.rand(x.shape[0]), "layer": 2, "num_layers": 28})()
    extra = {"context": ctx} if plan.prefill.needs_attention else {}
    assert abs(plan.prefill(x, (4, 14, 14), **extra).ratio - 0.3) <= 0.01


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "tome"}, r"method=tome needs budget= \(one of \[50, 30\]\)"),
        ({"method": "fastv", "tau_s": 0.8, "tau_t": 0.5}, "tau_s= applies to method=sttm, not fastv"),
        ({"budget_mode": "exact"}, r"needs retention= in \(0, 1\]"),
        ({"budget_mode": "exact", "retention": 1.5}, "retention="),
        ({"budget_mode": "exact", "retention": 0.3, "budget": 30}, "takes retention= only"),
        ({"budget": 30, "retention": 0.3}, "retention= needs budget_mode=exact"),
        (
            {"budget": 30, "budget_mode": "fixed"},
            r"budget_mode='fixed' is not accepted; use one of \['native', 'exact'\]",
        ),
        ({"method": "none", "budget_mode": "exact"}, "method=none"),
        ({"method": "visionzip"}, r"method='visionzip' is not accepted"),
        ({"method": "tome", "budget": 30, "token_order": "zigzag"}, r"use one of \['authors', 'raster'\]"),
        ({"method": "sttm", "budget": 30, "token_order": "raster"}, "token_order= applies to method in"),
        ({"method": "dycoke", "budget": 30, "dycoke_kv": "off"}, r"\['authors', 'video', 'gated'\]"),
        ({"method": "dycoke_stage1", "budget": 30, "dycoke_kv": "gated"}, "applies to method=dycoke"),
    ],
)
def test_bad_method_settings_fail(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ModelSettings.from_model_args(pretrained="/c", **kwargs)


def _query_aware_run(tiny_checkpoints, tmp_path, **model_args) -> tuple:
    """``(answers, stats records, model)`` of LlavaVideoSttm on two questions about one clip.

    kv_reuse stays at its default (True): a query-aware method must prefill per question anyway
    (``kv_reuse=False`` takes the same path, so comparing the two would check nothing)."""
    from lmms_sttm.data.synthetic import ClipSpec, ensure_clip
    from lmms_sttm.models.llava_video_sttm import LlavaVideoSttm
    from tests.models.test_model_layer import _run

    clip = str(
        ensure_clip(ClipSpec(num_frames=16, height=96, width=96, fps=4, seed=2, cut_at=8), tmp_path / "c.mp4")
    )
    m = LlavaVideoSttm(
        pretrained=tiny_checkpoints("llava_video"), kv_reuse=True, stats_dir=str(tmp_path / "stats"),
        **model_args,
    )  # fmt: skip
    assert m.method_for("probe_sttm").query_agnostic is False
    return _run(m, {0: clip, 2: clip}), m.stats.records, m


def test_query_aware_method_in_a_model_class(tiny_checkpoints, tmp_path):
    _, records, _ = _query_aware_run(
        tiny_checkpoints, tmp_path, method="fastv", budget_mode="exact", retention=0.3
    )
    assert [r["prefix_reused"] for r in records] == [False, False]  # prefilled per question
    for r in records:
        assert abs(r["retained_pct"] - 30) <= 1 and r["params"]["budget_mode"] == "exact"


def test_dycoke_plan_is_stage1_plus_kv_pruning():
    from lmms_sttm.engine.kv_pruning import KvPruning
    from lmms_sttm.merging.dycoke import DycokeStage1Reducer

    for budget, prune in ((50, 0.70), (30, 0.925)):
        plan = _plan(method="dycoke", budget=budget)
        assert isinstance(plan.prefill, DycokeStage1Reducer) and plan.prefill.prune == prune
        assert plan.query_agnostic is False and plan.prefill.needs_attention is False
        assert plan.decode == KvPruning(layer=3, prune=0.8, similarity=None, span="authors")
        assert plan.params == {
            "prune": prune, "budget": budget, "budget_mode": "native", "retention": None,
            "token_order": "authors", "dycoke_kv": "authors", "kv_layer": 3, "kv_prune": 0.8,
            "kv_similarity": None, "kv_span": "authors", "decode_positions": "authors",
        }  # fmt: skip
    gated = _plan(method="dycoke", budget=50, dycoke_kv="gated")
    assert gated.decode == KvPruning(layer=3, prune=0.8, similarity=0.9, span="video")
    assert gated.params["dycoke_kv"] == "gated" and gated.params["kv_span"] == "video"
    assert _plan(method="dycoke", budget=50, dycoke_kv="video").decode.similarity is None
    exact = _plan(method="dycoke", budget_mode="exact", retention=0.3)
    assert isinstance(exact.prefill, ExactBudget) and exact.decode is not None
    assert _plan(method="dycoke_stage1", budget=30).decode is None


@pytest.mark.parametrize("method", ["tome", "dycoke_stage1", "dycoke"])
def test_token_order_option_reaches_the_reducer(method):
    for budget_mode, kw in (("native", {"budget": 50}), ("exact", {"retention": 0.4})):
        default = _plan(method=method, budget_mode=budget_mode, **kw)
        raster = _plan(method=method, budget_mode=budget_mode, token_order="raster", **kw)
        inner = lambda p: p.prefill.reducer if isinstance(p.prefill, ExactBudget) else p.prefill  # noqa: E731
        assert inner(default).order == "authors" and default.params["token_order"] == "authors"
        assert inner(raster).order == "raster" and raster.params["token_order"] == "raster"
    assert "token_order" not in _plan(method="fastv", budget=50).params


def test_dycoke_in_a_model_class(tiny_checkpoints, tmp_path):
    _, records, m = _query_aware_run(tiny_checkpoints, tmp_path, method="dycoke", budget=30)
    assert m.merge_layer == 0
    assert [r["prefix_reused"] for r in records] == [False, False]
    for r in records:
        assert r["error"] is None and r["visual_tokens_kept"] < r["visual_tokens"]
        assert r["params"]["kv_prune"] == 0.8
        assert len(r["kv_video_kept"]) == r["new_tokens"] - 1 >= 1
        assert all(0 < k <= r["visual_tokens_kept"] for k in r["kv_video_kept"])
        # the authors' count: 0.2 of the video before stage 1 (1 - 0.8 in their float arithmetic)
        assert r["kv_video_kept"][0] == int(r["visual_tokens"] * (1 - 0.8))
        assert r["params"]["dycoke_kv"] == "authors" and r["params"]["token_order"] == "authors"


def test_baseline_options_are_method_keys_of_the_leaderboard():
    from lmms_sttm.report.model_args import parse_model_args, setting_label, setting_of, shared_setting

    args = parse_model_args("pretrained=/c,method=tome,budget=30,token_order=raster,dtype=float32")
    assert setting_label(setting_of(args)) == "budget=30,dtype=float32,token_order=raster"  # Setting column
    # the unreduced reference run shares only the non-method settings
    assert shared_setting(setting_of(args)) == {"dtype": "float32"}
    assert shared_setting({"dycoke_kv": "gated"}) == {}


def test_engine_options_and_position_rules():
    """eng26b: FrameFusion as the authors (staged) by default, single_layer as an option; FastV and
    FrameFusion keep original position ids; both options validated and recorded in params."""
    from lmms_sttm.engine.stages import is_staged
    from lmms_sttm.merging.framefusion import FrameFusionReducer
    from lmms_sttm.merging.framefusion_authors import FrameFusion

    plan = _plan(method="framefusion", budget=30)
    assert isinstance(plan.prefill, FrameFusion) and is_staged(plan.prefill) and plan.prefill.cost == 0.3
    assert plan.params["framefusion"] == "authors" and plan.params["decode_positions"] == "authors"
    single = _plan(method="framefusion", budget=30, framefusion="single_layer", decode_positions="compact")
    assert isinstance(single.prefill, FrameFusionReducer) and single.prefill.position_rule == "original"
    assert single.params["framefusion"] == "single_layer" and single.params["decode_positions"] == "compact"
    exact = _plan(method="framefusion", budget_mode="exact", retention=0.3)
    assert exact.params["framefusion"] == "single_layer" and exact.prefill.position_rule == "original"
    assert _plan(method="fastv", budget=50).prefill.position_rule == "original"
    assert getattr(_plan(method="tome", budget=50).prefill, "position_rule", None) is None
    for kwargs, match in [
        ({"budget": 30, "decode_positions": "full"}, r"decode_positions='full' is not accepted"),
        ({"method": "framefusion", "budget": 30, "framefusion": "two"}, r"framefusion='two' is not accepted"),
        (
            {"method": "fastv", "budget": 30, "framefusion": "single_layer"},
            "framefusion= applies to method=framefusion, not fastv",
        ),
    ]:
        with pytest.raises(ValueError, match=match):
            ModelSettings.from_model_args(pretrained="/c", **kwargs)


def test_framefusion_authors_in_a_model_class(tiny_checkpoints, tmp_path):
    """eng26b: the staged FrameFusion through LlavaVideoSttm, prefilled per question (kept
    counts recorded); the variant is recorded."""
    _, records, _ = _query_aware_run(tiny_checkpoints, tmp_path, method="framefusion", budget=50)
    assert [r["prefix_reused"] for r in records] == [False, False]
    for r in records:
        assert r["error"] is None and 0 < r["visual_tokens_kept"] < r["visual_tokens"]
        assert r["params"]["framefusion"] == "authors" and r["params"]["decode_positions"] == "authors"
