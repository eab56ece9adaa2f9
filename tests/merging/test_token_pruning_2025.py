"""EVS, VidCom2 and FastVID: the vectorised plans against the loop references of
``token_pruning_reference.py`` on small seeded videos, plus the plans' bookkeeping and budgets."""

from __future__ import annotations

import pytest
import torch

from lmms_sttm.merging.evs import EvsReducer, evs_count, evs_keep
from lmms_sttm.merging.fastvid import FastVidParams, fastvid_plan, frame_counts, segment_sizes
from lmms_sttm.merging.vidcom2 import Vidcom2Reducer, vidcom2_keep
from tests.merging.token_pruning_reference import evs_ref, fastvid_ref, vidcom2_ref

GRIDS = [(6, 3, 4), (9, 2, 3), (1, 4, 4), (12, 3, 3)]


def _video(grid, seed, channels=10, drift=0.3):
    """Frames that drift from a base, with a scene change at the middle frame."""
    gen = torch.Generator().manual_seed(seed)
    t, h, w = grid
    base = torch.randn(h * w, channels, generator=gen)
    frames = []
    for i in range(t):
        if i == t // 2:
            base = torch.randn(h * w, channels, generator=gen)
        base = base + drift * torch.randn(h * w, channels, generator=gen)
        frames.append(base.clone())
    return torch.cat(frames)


def _kept(plan):
    return plan.rep_index.tolist()


def _check_plan(plan, n):
    assert plan.token_map.shape == (n,)
    assert torch.equal(plan.token_map[plan.rep_index], torch.arange(plan.num_kept))
    assert torch.equal(plan.num_patches, torch.bincount(plan.token_map, minlength=plan.num_kept))
    assert bool((plan.rep_index[1:] > plan.rep_index[:-1]).all())


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("rate", [0.5, 0.7, 0.9])
def test_evs_matches_loop_reference(grid, rate):
    for seed in range(3):
        x = _video(grid, seed)
        plan = EvsReducer(rate)(x, grid)
        assert _kept(plan) == evs_ref(x, grid, rate)
        assert plan.num_kept == evs_count(grid[1] * grid[2], grid[0], rate)
        _check_plan(plan, x.shape[0])
        # a dropped token is counted with the token at its position one frame earlier (chained)
        f = grid[1] * grid[2]
        keep = torch.zeros(x.shape[0], dtype=torch.bool)
        keep[plan.rep_index] = True
        for i in torch.nonzero(~keep).squeeze(1).tolist():
            j = i - f
            while not keep[j]:
                j -= f
            assert int(plan.rep_index[plan.token_map[i]]) == j
        assert torch.equal(plan.features, x[plan.rep_index])


def test_evs_first_frame_whole_and_float_rate():
    x = _video((10, 3, 3), 0)
    keep = evs_keep(x, (10, 3, 3), 0.7)
    assert bool(keep[:9].all())
    # vLLM's float arithmetic: int(90 * (1 - 0.7)) = int(27.000000000000004) = 27
    assert int(keep.sum()) == 27
    assert evs_count(9, 10, 0.95) == 9  # never below one frame


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("retention", [0.27, 0.33, 0.5])  # no budget at a .5 boundary
def test_vidcom2_matches_loop_reference(grid, retention):
    for seed in range(3):
        x = _video(grid, seed)
        plan = Vidcom2Reducer(retention)(x, grid)
        assert _kept(plan) == vidcom2_ref(x, grid, retention)
        _check_plan(plan, x.shape[0])
        assert torch.equal(plan.features, x[plan.rep_index])


def test_vidcom2_gives_the_distinct_frame_more_tokens():
    grid = (8, 4, 4)
    gen = torch.Generator().manual_seed(3)
    base = torch.randn(16, 12, generator=gen)
    frames = [base + 0.05 * torch.randn(16, 12, generator=gen) for _ in range(8)]
    frames[5] = torch.randn(16, 12, generator=gen) * 3
    keep = vidcom2_keep(torch.cat(frames), grid, 0.25).reshape(8, 16).sum(dim=1)
    assert int(keep[5]) == int(keep.max()) and int(keep[5]) > int(keep[0])


def test_fastvid_counts_follow_the_rules():
    # 5 frames, 10 per frame: 50 kept, 20 context (ceil(5/4) = 2 chunks of 10), 30 salient (6 each)
    sal, ctx = frame_counts(5, 10, 0.4, 4, 100)
    assert sal == [6, 6, 6, 6, 6] and ctx == [10, 0, 0, 0, 10]
    sal, ctx = frame_counts(1, 10, 0.4, 4, 100)
    assert sal == [6] and ctx == [4]
    sal, ctx = frame_counts(4, 84, 0.4, 4, 169)  # their LLaVA code raises here (134 > 169 - 50 = 119)
    assert sal == [51, 51, 50, 50] and ctx == [0, 0, 0, 119]
    # one cut forced by tau, the others are the c-1 lowest similarities
    g = torch.tensor([[1.0, 0.0], [1.0, 0.01], [0.0, 1.0], [0.0, 1.0], [0.1, 1.0]])
    assert segment_sizes(g, 1, 0.9) == [2, 3]
    assert segment_sizes(g, 3, 0.0) == [2, 2, 1]


@pytest.mark.parametrize("grid", [(6, 3, 4), (9, 2, 3), (1, 4, 4), (12, 3, 3)])
@pytest.mark.parametrize("ratio", [0.25, 0.5])
def test_fastvid_matches_loop_reference(grid, ratio):
    for seed in range(2):
        x = _video(grid, seed, channels=8)
        params = FastVidParams(ratio=ratio, c=3, tau=0.5, p=2)
        plan = fastvid_plan(x, grid, params)
        kept, feats = fastvid_ref(x, grid, ratio, c=3, tau=0.5, p=2)
        assert _kept(plan) == kept
        ref = torch.tensor([feats[i] for i in kept], dtype=torch.float64)
        assert torch.allclose(plan.features.double(), ref, atol=1e-5)
        _check_plan(plan, x.shape[0])


@pytest.mark.parametrize("grid", [(6, 3, 4), (9, 2, 3)])
def test_fastvid_with_vision_scores_matches_loop_reference_and_they_choose_the_salient(grid):
    """The vision scores replace the stand-in saliency: the same plan as the loop run on them, and a
    plan other than the stand-in's (the salient tokens are the scores' top ones)."""
    for seed in range(2):
        x = _video(grid, seed, channels=8)
        scores = torch.rand(grid[0], grid[1] * grid[2], generator=torch.Generator().manual_seed(seed + 7))
        params = FastVidParams(ratio=0.5, c=3, tau=0.5, p=2)
        plan = fastvid_plan(x, grid, params, saliency=scores)
        kept, feats = fastvid_ref(x, grid, 0.5, c=3, tau=0.5, p=2, saliency=scores.tolist())
        assert _kept(plan) == kept
        ref = torch.tensor([feats[i] for i in kept], dtype=torch.float64)
        assert torch.allclose(plan.features.double(), ref, atol=1e-5)
        stand_in, _ = fastvid_ref(x, grid, 0.5, c=3, tau=0.5, p=2)
        assert kept != stand_in
        f = grid[1] * grid[2]
        top = torch.argsort(-scores[0], stable=True)[: int(f * 0.5) - int(int(f * 0.5) * 0.4)]
        assert set(top.tolist()) <= set(kept)  # frame 0's salient tokens: its top scores


def test_fastvid_merges_context_tokens():
    grid = (8, 3, 4)
    x = _video(grid, 1)
    plan = fastvid_plan(x, grid, FastVidParams(ratio=0.25))
    changed = ~torch.isclose(plan.features, x[plan.rep_index]).all(dim=1)
    assert 0 < int(changed.sum()) < plan.num_kept  # context tokens merged, salient ones copied


def test_exact_budgets_guess_then_search():
    from lmms_sttm.methods import registry
    from lmms_sttm.methods.bind import bind, method_settings
    from lmms_sttm.methods.spec import BuildContext

    x = _video((16, 3, 3), 0)  # 9 tokens a frame: FastVID's int(9 * 0.3) = 2 keeps 22%, too few
    for name in ("evs", "vidcom2", "fastvid"):
        spec = registry.get(name)
        for r in (0.3, 0.5):
            ctx = BuildContext("qwen", "qwen2_vl_7b", "t", 0, 2, budget_mode="exact", retention=r)
            reducer = bind(spec, method_settings(spec, {}), ctx).prefill
            if name == "fastvid":  # a staged method (its stage reads the vision scores)
                reducer = reducer.reduce
                plan = reducer(x, (16, 3, 3), None)
            else:
                plan = reducer(x, (16, 3, 3))
            assert abs(plan.ratio - r) <= 0.01, (name, r, plan.ratio)
            _check_plan(plan, x.shape[0])
            if name == "fastvid":
                assert reducer.last.calls > 1  # the first guess kept too few: the search ran
    # a guess that lands: one call (VidCom2 keeps about r of the tokens of 196-token frames)
    spec = registry.get("vidcom2")
    ctx = BuildContext("llava", "llava_video_7b", "t", 0, 2, budget_mode="exact", retention=0.3)
    reducer = bind(spec, method_settings(spec, {}), ctx).prefill
    plan = reducer(_video((10, 14, 14), 1), (10, 14, 14))
    assert reducer.last.calls == 1 and abs(plan.ratio - 0.3) <= 0.005


@pytest.mark.parametrize(
    "name, knob, values",
    [("evs", "video_pruning_rate", (0.5, 0.7)), ("vidcom2", "r_ratio", (0.5, 0.3)),
     ("fastvid", "fastvid_ratio", (0.5, 0.3))],
)  # fmt: skip
def test_budgets_bind_the_published_settings(name, knob, values):
    from lmms_sttm.methods import registry
    from lmms_sttm.methods.bind import bind, method_settings
    from lmms_sttm.methods.spec import BuildContext

    spec = registry.get(name)
    assert spec.query_agnostic and spec.default_layer == 0
    for budget, value in zip((50, 30), values, strict=True):
        ctx = BuildContext("llava", "llava_video_7b", "t", 0, 2, budget=budget)
        inst = bind(spec, method_settings(spec, {}), ctx)
        assert inst.params[knob] == value and inst.params["budget"] == budget
    assert spec.position_rule_for("qwen") in (None, "original")
    assert spec.position_rule_for("llava") == ("original" if name == "fastvid" else None)
