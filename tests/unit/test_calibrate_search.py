"""The calibration search (``lmms_sttm.calibrate.search``): one threshold pair whose mean retention
over several videos hits a target, checked against STTM itself (``merge_video`` per pair) and a
brute-force scan of the ray."""

from __future__ import annotations

import pytest
import torch

from lmms_sttm.calibrate.capture import CountingReducer, spread
from lmms_sttm.calibrate.search import Counted, pair_at, ray, search
from lmms_sttm.merging.budget import MIN_TAU_T
from lmms_sttm.merging.sttm import merge_video


def _video(seed: int, t: int, h: int, w: int, c: int = 16) -> torch.Tensor:
    """Smooth random clip ``[T, H, W, C]``: a slow drift over frames plus noise, so thresholds matter."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(1, h, w, c, generator=g)
    drift = torch.randn(t, 1, 1, c, generator=g).cumsum(0) * 0.3
    return base + drift + 0.4 * torch.randn(t, h, w, c, generator=g)


def _by_merge(x: torch.Tensor) -> Counted:
    """The kept count of ``merge_video`` itself at each pair (no ``SttmCounts``)."""
    return Counted(lambda s, t: merge_video(x, s, t).num_kept, x.shape[0] * x.shape[1] * x.shape[2])


VIDEOS = [_video(0, 4, 6, 6), _video(1, 6, 5, 7), _video(2, 3, 8, 4)]


@pytest.mark.parametrize("target", [0.5, 0.3])
def test_mean_retention_hits_the_target_and_is_sttms_own_count(target):
    videos = [_by_merge(x) for x in VIDEOS]
    found = search(videos, target, tol=0.02)
    best = found.best
    assert found.within_tolerance and abs(best.mean - target) <= 0.02
    # recomputed by hand: STTM at the reported pair on every video, the mean of kept / tokens
    by_hand = [merge_video(x, best.tau_s, best.tau_t).num_kept / x[..., 0].numel() for x in VIDEOS]
    assert best.per_video == pytest.approx(by_hand, abs=0)
    assert best.mean == pytest.approx(sum(by_hand) / len(by_hand), abs=1e-12)
    # the pair lies on the ray through the reference pair (0.80, 0.50): 1 - tau_s = 0.4 (1 - tau_t)
    if best.tau_t > MIN_TAU_T:
        assert 1 - best.tau_s == pytest.approx(0.4 * (1 - best.tau_t), abs=1e-4)
    # every evaluated pair is in the trace; the answer is the closest of them
    assert best in found.trace
    assert all(abs(p.mean - target) >= abs(best.mean - target) for p in found.trace)


def _by_counts(x: torch.Tensor) -> Counted:
    """The kept count from the hidden states captured once (``CountingReducer``: ``SttmCounts``)."""
    t, h, w, c = x.shape
    reducer = CountingReducer()
    reducer(x.reshape(-1, c), (t, h, w))
    return Counted(reducer.counts.count, t * h * w)


def test_search_is_as_close_as_a_brute_force_scan_of_the_ray():
    videos = [_by_counts(x) for x in VIDEOS]
    unit, lam_max = ray()
    scan = []
    for i in range(201):
        s, t = pair_at(lam_max * i / 200, unit)
        scan.append(sum(v.count(s, t) / v.tokens for v in videos) / len(videos))
    assert max(scan) > 0.3 > min(scan)
    closest = min(abs(m - 0.3) for m in scan)
    found = search(videos, 0.3, tol=0.01)
    # within half a tolerance (the stop band), or no worse than the scan's best pair
    assert abs(found.best.mean - 0.3) <= max(0.005, closest) + 1e-12
    assert len(found.trace) <= 40


def test_counting_reducer_counts_what_merge_video_keeps():
    """The counts the calibration reads from captured hidden states equal STTM's own plans."""
    x = VIDEOS[1]
    t, h, w, c = x.shape
    reducer = CountingReducer()
    plan = reducer(x.reshape(-1, c), (t, h, w))
    assert plan.num_kept == 1 and int(plan.num_patches.sum()) == t * h * w  # the video collapses to one token
    for tau_s, tau_t in [(0.9, 0.8), (0.8, 0.5), (0.5, 0.2), (0.99, 0.99), (-1.0, 0.001)]:
        assert reducer.counts.count(tau_s, tau_t) == merge_video(x, tau_s, tau_t).num_kept


def test_a_jump_over_the_target_is_reported_not_hidden():
    """A sample whose mean jumps from 100% to 2% cannot reach 50%: the closest pair is returned and
    flagged outside the tolerance."""
    videos = [Counted(lambda s, t: 50 if s > 0.6 else 1, 50)]
    found = search(videos, 0.5, tol=0.01)
    assert not found.within_tolerance
    assert found.best.mean in (1.0, 0.02)
    assert found.as_dict()["within_tolerance"] is False
    assert found.as_dict()["trace_size"] == len(found.trace) > 1


def test_ray_starts_at_the_reference_pair_and_ends_at_tau_s_minus_one():
    unit, lam_max = ray((0.8, 0.5))
    assert unit == pytest.approx((0.4, 1.0))
    assert pair_at(0.5, unit) == (0.8, 0.5)
    assert pair_at(0.0, unit) == (1.0, 1.0)
    assert pair_at(lam_max, unit) == (-1.0, MIN_TAU_T)  # tau_t held above 0 (0 switches merging off)
    videos = [_by_merge(VIDEOS[0])]
    first = search(videos, 0.5).trace[0]
    assert (first.tau_s, first.tau_t) == (0.8, 0.5)
    with pytest.raises(ValueError, match="direction"):
        ray((1.0, 0.5))


def test_spread_samples_evenly_over_the_whole_list():
    items = list(range(10))
    assert spread(items, 3) == [0, 3, 6]
    assert spread(items, 5) == [0, 2, 4, 6, 8]
    assert spread(items, 20) == items
    assert spread(list(range(8)), 2) == [0, 4]
