"""Properties of ``merge_video`` over many grids, equivalence with the loop reference, bad input."""

from __future__ import annotations

import pytest
import torch
from sttm_inputs import one_thread, structured_video
from sttm_reference import reference_merge

from lmms_sttm.merging.reduction import Reduction
from lmms_sttm.merging.sttm import merge_video

GRIDS = [(1, 14, 14), (3, 7, 5), (6, 13, 23), (5, 27, 27), (4, 4, 4)]
TAUS = [(0.7, 0.5), (0.9, 0.8), (0.97, 0.95)]


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


def _video(grid, channels=24, seed=0):
    t, h, w = grid
    return structured_video(t, h, w, channels, seed=seed + 7 * h + w)


def _check_plan(r: Reduction, grid) -> None:
    t, h, w = grid
    n = t * h * w
    assert r.grid == grid
    assert r.features.shape[0] == r.num_patches.shape[0] == r.tlbr.shape[0] == r.rep_index.shape[0]
    # Every original token is covered by exactly one kept token; sizes add up.
    assert (
        r.token_map.shape == (n,) and int(r.token_map.min()) == 0 and int(r.token_map.max()) == r.num_kept - 1
    )
    assert torch.equal(torch.bincount(r.token_map, minlength=r.num_kept), r.num_patches)
    assert int(r.num_patches.sum()) == n
    # Raster order of the representatives' top-left corners, earlier frames first.
    assert bool((r.rep_index[1:] > r.rep_index[:-1]).all())
    tt, y0, x0, y1, x1 = r.tlbr.unbind(1)
    assert torch.equal(r.rep_index, tt * h * w + y0 * w + x0)
    assert bool(((y1 > y0) & (x1 > x0) & (y1 <= h) & (x1 <= w)).all())
    # Every leaf of a token's representative rectangle (in its frame) maps to that token.
    tok = r.token_map
    leaf = torch.arange(n)
    lt, ly, lx = leaf // (h * w), leaf % (h * w) // w, leaf % w
    own_frame = lt == tt.index_select(0, tok)
    inside = (ly >= y0[tok]) & (ly < y1[tok]) & (lx >= x0[tok]) & (lx < x1[tok])
    area = (y1 - y0) * (x1 - x0)
    assert torch.equal(torch.bincount(tok[own_frame & inside], minlength=r.num_kept), area)
    assert torch.equal(r.token_map.index_select(0, r.rep_index), torch.arange(r.num_kept))


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize(("tau_s", "tau_t"), TAUS)
def test_plan_covers_every_token_once_in_raster_order(grid, tau_s, tau_t):
    x = _video(grid)
    for mask in (False, True):
        r = merge_video(x, tau_s, tau_t, mask_unused_slots=mask)
        _check_plan(r, grid)
        assert r.features.shape[1] == x.shape[-1]


@pytest.mark.parametrize("grid", GRIDS)
def test_spatial_only_tokens_are_their_rectangles(grid):
    r = merge_video(_video(grid), 0.8, 0.0)
    area = (r.tlbr[:, 3] - r.tlbr[:, 1]) * (r.tlbr[:, 4] - r.tlbr[:, 2])
    assert torch.equal(area, r.num_patches)


@pytest.mark.parametrize("grid", GRIDS)
def test_identity_settings_return_the_input(grid):
    x = _video(grid)
    r = merge_video(x, 1.5, 0.0)
    t, h, w, c = x.shape
    assert torch.equal(r.features, x.reshape(-1, c))
    assert torch.equal(r.token_map, torch.arange(t * h * w))
    assert torch.equal(r.num_patches, torch.ones(t * h * w, dtype=torch.int64))
    assert r.ratio == 1.0


@pytest.mark.parametrize("grid", GRIDS)
def test_token_count_is_monotone_in_the_thresholds(grid):
    x = _video(grid, seed=3)
    spatial = [merge_video(x, tau, 0.0).num_kept for tau in (-1.0, 0.5, 0.8, 0.9, 0.95, 0.99, 1.01)]
    temporal = [merge_video(x, 0.9, tau).num_kept for tau in (0.1, 0.5, 0.8, 0.9, 0.99)]
    assert spatial == sorted(spatial) and temporal == sorted(temporal)
    assert spatial[-1] == x.shape[0] * x.shape[1] * x.shape[2]


@pytest.mark.parametrize("grid", GRIDS)
def test_constant_video_collapses_to_the_roots(grid):
    t, h, w = grid
    x = torch.ones(t, h, w, 8) * torch.linspace(1, 2, 8)
    spatial = merge_video(x, 0.99, 0.0)
    roots = spatial.num_kept // t
    assert spatial.num_kept == t * roots
    assert roots == {(14, 14): 16, (7, 5): 12, (13, 23): 24, (27, 27): 16, (4, 4): 16}[(h, w)]
    both = merge_video(x, 0.99, 0.5)
    assert both.num_kept == roots
    assert bool((both.tlbr[:, 0] == 0).all())
    assert torch.equal(both.num_patches, spatial.num_patches[:roots] * t)
    torch.testing.assert_close(both.features, x.reshape(-1, 8)[:roots])


EQUIVALENCE = [
    ((3, 7, 5), {}),
    ((3, 7, 5), {"mask_unused_slots": True}),
    ((4, 13, 23), {}),
    ((4, 13, 23), {"mask_unused_slots": True, "weighted": True}),
    ((4, 13, 23), {"best_partner": True}),
    ((4, 13, 23), {"union_find": "components"}),
    ((2, 27, 27), {}),
    ((2, 27, 27), {"mask_unused_slots": True, "best_partner": True}),
    ((5, 14, 14), {}),
    ((5, 14, 14), {"weighted": True, "union_find": "components"}),
    ((5, 14, 14), {"union_find": "authors", "merge_dtype": "float32"}),
    ((6, 9, 6), {"mask_unused_slots": True}),
    ((3, 4, 4), {}),
    ((2, 3, 3), {"root_level": 0}),
    ((3, 28, 20), {"root_level": 2}),
]


@pytest.mark.parametrize(("grid", "flags"), EQUIVALENCE)
@pytest.mark.parametrize(("tau_s", "tau_t"), [(0.75, 0.6), (0.9, 0.8)])
def test_matches_the_loop_reference(grid, flags, tau_s, tau_t):
    x = _video(grid, seed=11)
    fast = merge_video(x, tau_s, tau_t, **flags)
    ref = reference_merge(x, tau_s, tau_t, **flags)
    assert torch.equal(fast.tlbr, ref.tlbr)
    assert torch.equal(fast.num_patches, ref.num_patches)
    assert torch.equal(fast.token_map, ref.token_map)
    assert torch.equal(fast.rep_index, ref.rep_index)
    torch.testing.assert_close(fast.features.double(), ref.features, atol=1e-5, rtol=1e-5)
    assert 0.05 < fast.ratio < 0.95  # both outcomes of the tests occur


LOW = [
    ((3, 7, 5), torch.bfloat16, {}),
    ((4, 13, 23), torch.bfloat16, {}),
    ((5, 14, 14), torch.bfloat16, {"union_find": "components"}),
    ((4, 13, 23), torch.bfloat16, {"merge_dtype": "float32"}),
    ((5, 14, 14), torch.bfloat16, {"merge_dtype": "float32"}),
    ((4, 13, 23), torch.float16, {}),
    ((2, 27, 27), torch.float16, {"merge_dtype": "float32"}),
]


@pytest.mark.parametrize(("grid", "dtype", "flags"), LOW)
@pytest.mark.parametrize(("tau_s", "tau_t"), [(0.75, 0.6), (0.9, 0.8)])
def test_low_precision_input_matches_the_loop_reference(grid, dtype, flags, tau_s, tau_t):
    """bf16/fp16 in: by default every pooled level is rounded to the input dtype (the authors' pooling)."""
    x = _video(grid, seed=11).to(dtype)
    fast = merge_video(x, tau_s, tau_t, **flags)
    ref = reference_merge(x, tau_s, tau_t, **flags)
    assert torch.equal(fast.token_map, ref.token_map)
    assert torch.equal(fast.tlbr, ref.tlbr) and torch.equal(fast.rep_index, ref.rep_index)
    assert fast.features.dtype == dtype
    # the node means of the reference, rounded once: within one unit in the last place of ``dtype``
    scale = float(ref.features.abs().max())
    torch.testing.assert_close(
        fast.features.double(),
        ref.features,
        rtol=2 * torch.finfo(dtype).eps,
        atol=scale * torch.finfo(dtype).eps,
    )


@pytest.mark.parametrize(
    ("grid", "seed", "taus"), [((4, 14, 14, 64), 6, (0.8, 0.5)), ((3, 27, 27, 32), 6, (0.7, 0.3))]
)
def test_rounding_the_pyramid_changes_decisions_and_the_option_restores_float32(grid, seed, taus):
    """bf16 videos that merge differently with the input-dtype pyramid; ``float32`` = fp32 pooling."""
    low = structured_video(*grid, seed=seed).to(torch.bfloat16)
    default = merge_video(low, *taus)
    exact = merge_video(low, *taus, merge_dtype="float32")
    assert torch.equal(exact.token_map, merge_video(low.float(), *taus).token_map)
    assert not torch.equal(default.token_map, exact.token_map)
    assert torch.equal(default.token_map, reference_merge(low, *taus).token_map)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_float_dtypes(dtype):
    x = _video((3, 7, 5), seed=2)
    ref = merge_video(x, 0.8, 0.6)
    r = merge_video(x.to(dtype), 0.8, 0.6)
    assert r.features.dtype == dtype
    _check_plan(r, (3, 7, 5))
    if dtype == torch.float64:
        assert torch.equal(r.token_map, ref.token_map)
        torch.testing.assert_close(r.features.float(), ref.features)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_non_contiguous_input_and_repeatability(dtype):
    x = _video((4, 14, 14), seed=5).to(dtype)
    strided = x.permute(0, 2, 1, 3).contiguous().permute(0, 2, 1, 3)
    assert not strided.is_contiguous()
    a, b = merge_video(x, 0.85, 0.6), merge_video(strided, 0.85, 0.6)
    assert torch.equal(a.token_map, b.token_map) and torch.equal(a.features, b.features)


def test_results_do_not_alias_scratch_memory_of_later_calls():
    x = _video((4, 14, 14), seed=8)
    first = merge_video(x, 0.85, 0.6)
    saved = first.features.clone()
    merge_video(_video((4, 14, 14), seed=9), 0.85, 0.6)
    merge_video(_video((2, 13, 23), seed=9), 0.5, 0.6)
    assert torch.equal(first.features, saved)
    assert first.features.untyped_storage().nbytes() == saved.numel() * saved.element_size()


def test_intra_op_thread_count_is_restored_and_results_do_not_depend_on_it():
    x = _video((3, 14, 14), seed=10)
    single = merge_video(x, 0.85, 0.6)
    torch.set_num_threads(2)  # the autouse fixture restores the original count afterwards
    multi = merge_video(x, 0.85, 0.6)
    assert torch.get_num_threads() == 2
    assert torch.equal(single.token_map, multi.token_map)
    torch.testing.assert_close(single.features, multi.features)
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        merge_video(bad, 0.85, 0.6)
    assert torch.get_num_threads() == 2


def test_inputs_that_require_grad_are_accepted():
    x = _video((2, 14, 14), seed=4).requires_grad_(True)
    r = merge_video(x, 0.85, 0.6)
    assert not r.features.requires_grad
    torch.testing.assert_close(r.features, merge_video(x.detach(), 0.85, 0.6).features)


def test_select_and_mean_follow_the_plan():
    x = _video((3, 14, 14), seed=6)
    r = merge_video(x, 0.85, 0.0)
    ids = torch.arange(3 * 14 * 14)
    assert torch.equal(r.select(ids), r.rep_index)
    # Even grids: node features are uniform leaf means, so the plan's mean reproduces them.
    torch.testing.assert_close(r.mean(x.reshape(-1, x.shape[-1])), r.features)


@pytest.mark.parametrize(
    ("x", "kwargs", "error", "match"),
    [
        (torch.zeros(2, 4, 4), {}, ValueError, "rank 4"),
        (torch.zeros(1, 2, 4, 4, 3), {}, ValueError, "rank 4"),
        (torch.zeros(2, 4, 4, 3, dtype=torch.int64), {}, TypeError, "floating-point"),
        (torch.zeros(0, 14, 14, 3), {}, ValueError, "empty video"),
        (torch.zeros(2, 14, 14, 0), {}, ValueError, "empty video"),
        (torch.ones(2, 2, 9, 3), {}, ValueError, "root_level=1 is out of range"),
        (torch.ones(2, 1, 1, 3), {}, ValueError, "smaller than the requested root"),
        (torch.ones(2, 14, 14, 3), {"root_level": 4}, ValueError, "out of range"),
        (torch.ones(2, 14, 14, 3), {"root_level": -1}, ValueError, "out of range"),
        (torch.ones(2, 14, 14, 3), {"root_level": 1.0}, TypeError, "root_level"),
        (torch.ones(2, 14, 14, 3), {"tau_s": float("nan")}, ValueError, "tau_s"),
        (torch.ones(2, 14, 14, 3), {"tau_t": "0.5"}, TypeError, "tau_t"),
        (torch.ones(2, 14, 14, 3), {"union_find": "exact"}, ValueError, r"\['authors', 'components'\]"),
        (torch.ones(2, 14, 14, 3), {"merge_dtype": "bf16"}, ValueError, r"\['input', 'float32'\]"),
        ([[1.0]], {}, TypeError, "torch.Tensor"),
    ],
)
def test_bad_input_raises_a_clear_error(x, kwargs, error, match):
    args = {"tau_s": 0.8, "tau_t": 0.5, **kwargs}
    with pytest.raises(error, match=match):
        merge_video(x, **args)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("grid", [(3, 14, 14), (2, 4, 4)])
def test_non_finite_features_are_rejected(value, grid):
    x = _video(grid)
    x[1, 2, 3, 4] = value
    with pytest.raises(ValueError, match=r"non-finite values .* first at \(t, y, x\) = \(1, 2, 3\)"):
        merge_video(x, 0.8, 0.5)


@pytest.mark.parametrize("grid", [(2, 14, 14), (2, 4, 4)])
def test_overflowing_norms_are_rejected(grid):
    x = torch.full((*grid, 8), 3e38)
    with pytest.raises(ValueError, match="norms overflow"):
        merge_video(x, 0.8, 0.5)


def test_tiny_grids_work():
    x = torch.randn(2, 1, 1, 4, generator=torch.Generator().manual_seed(0))
    r = merge_video(x, 0.9, 0.5, root_level=0)
    _check_plan(r, (2, 1, 1))
    r = merge_video(torch.randn(1, 1, 5, 4), 0.9, 0.5)
    _check_plan(r, (1, 1, 5))
