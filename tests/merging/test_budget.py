"""Exact budgets: every method keeps R of each synthetic video's tokens within one point."""

from __future__ import annotations

import math

import pytest
import torch

from lmms_sttm.engine.reducer import check_reduction
from lmms_sttm.merging.budget import ExactBudget, SttmExactReducer, trim_to
from lmms_sttm.merging.dycoke import DycokeStage1Reducer
from lmms_sttm.merging.fastv import FastVReducer
from lmms_sttm.merging.framefusion import FrameFusionReducer
from lmms_sttm.merging.pool import PoolReducer
from lmms_sttm.merging.reduction import Reduction
from lmms_sttm.merging.tome import TomeReducer

RETENTIONS = (0.5, 0.3, 0.15)
TOL = 0.01


def synthetic_video(grid, seed: int, channels: int = 24, kind: str = "scene") -> torch.Tensor:
    """``[T*H*W, C]``: a smooth scene field drifting over time, persistent details, noise.

    ``kind="static"``: every frame equal (ties everywhere); ``"noise"``: iid tokens.
    """
    t, h, w = grid
    gen = torch.Generator().manual_seed(seed)
    if kind == "noise":
        return torch.randn(t * h * w, channels, generator=gen)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    freqs = torch.rand(4, 2, generator=gen) * 3
    basis = torch.stack([torch.cos(2 * math.pi * (f[0] * yy + f[1] * xx)) for f in freqs], -1)  # [H, W, 4]
    mix = torch.randn(4, channels, generator=gen)
    drift = torch.cumsum(0.15 * torch.randn(t, 1, 1, channels, generator=gen), 0)
    frames = 2.0 + basis @ mix + (0 if kind == "static" else drift)
    if kind != "static":
        detail = (torch.rand(t // 2 + 1, h, w, 1, generator=gen) < 0.2).float()
        detail = detail.repeat_interleave(2, 0)[:t] * torch.randn(h, w, channels, generator=gen)
        frames = frames + 1.5 * detail + 0.2 * torch.randn(t, h, w, channels, generator=gen)
    else:
        frames = frames.expand(t, h, w, channels)
    return frames.reshape(t * h * w, channels).contiguous()


VIDEOS = [
    ((8, 14, 14), 0, "scene"),
    ((9, 14, 14), 1, "scene"),
    ((6, 10, 12), 2, "scene"),
    ((8, 14, 14), 3, "static"),
    ((4, 14, 14), 4, "noise"),
]


class _Ctx:
    def __init__(self, n: int, seed: int) -> None:
        self.scores = torch.rand(n, generator=torch.Generator().manual_seed(seed))
        self.layer, self.num_layers = 2, 28


def _exact_reducers(retention: float) -> dict:
    return {
        "sttm": SttmExactReducer(retention, TOL),
        "tome": ExactBudget(TomeReducer(retention), retention, TOL),
        "dycoke_stage1": ExactBudget(DycokeStage1Reducer(keep=retention), retention, TOL),
        "pool": ExactBudget(PoolReducer(retention, tol=TOL / 2), retention, TOL),
        "fastv": ExactBudget(FastVReducer(retention), retention, TOL),
        "framefusion": ExactBudget(FrameFusionReducer(keep=retention), retention, TOL),
    }


@pytest.mark.parametrize("retention", RETENTIONS)
def test_every_method_hits_the_budget_on_every_video(retention):
    misses = []
    for grid, seed, kind in VIDEOS:
        x = synthetic_video(grid, seed, kind=kind)
        for name, reducer in _exact_reducers(retention).items():
            extra = {"context": _Ctx(x.shape[0], seed)} if reducer.needs_attention else {}
            plan = reducer(x, grid, **extra)
            check_reduction(plan, x, grid)
            assert int(plan.num_patches.sum()) == x.shape[0]
            if abs(plan.ratio - retention) > TOL:
                misses.append((name, grid, kind, plan.ratio))
    assert not misses


def test_sttm_exact_search_reports_its_cost_and_mostly_avoids_trimming():
    trimmed = 0
    for grid, seed, kind in VIDEOS[:3]:
        x = synthetic_video(grid, seed, kind=kind)
        for retention in RETENTIONS:
            reducer = SttmExactReducer(retention, TOL)
            plan = reducer(x, grid)
            info = reducer.last
            assert 1 <= info.calls <= 14 and info.seconds > 0
            assert info.tau_s is not None and info.tau_t is not None
            trimmed += info.trimmed > 0
            assert abs(plan.ratio - retention) <= TOL
    assert trimmed == 0  # the threshold search alone lands within the band on scene videos


def test_sttm_exact_search_keeps_temporal_merging_on():
    """``tau_t <= 0`` switches temporal merging off, so the count jumps back up there; on noise
    features (cosine ~0) the search must reach the target with ``tau_t`` held above 0, without
    trimming, and never hand ``merge_video`` a ``tau_t`` at or below 0."""
    grid, seed, kind = next(v for v in VIDEOS if v[2] == "noise")
    x = synthetic_video(grid, seed, kind=kind)
    for retention in RETENTIONS:
        reducer = SttmExactReducer(retention, TOL)
        plan = reducer(x, grid)
        assert reducer.last.trimmed == 0 and reducer.last.tau_t > 0
        assert abs(plan.ratio - retention) <= TOL


def test_trim_to_is_exact_and_merges_kept_tokens():
    grid = (4, 6, 6)
    x = synthetic_video(grid, 7)
    plan = Reduction.identity(x.reshape(4, 6, 6, -1))
    out = trim_to(plan, 40)
    check_reduction(out, x, grid)
    assert out.num_kept == 40
    torch.testing.assert_close(out.features, out.mean(x), atol=1e-5, rtol=0)
    assert trim_to(out, 50) is out


def test_exact_budget_refuses_an_undershoot():
    grid = (4, 6, 6)
    x = synthetic_video(grid, 8)
    with pytest.raises(ValueError, match="outside retention"):
        ExactBudget(TomeReducer(0.1), 0.5, TOL)(x, grid)
