"""HoliTom and FlashVID (``merging/holitom.py``, ``merging/flashvid.py``) against the loop-based
references of ``holitom_flashvid_reference.py``: the same kept tokens, the same groups and the same
features, on small seeded videos with temporal redundancy (so windows, trees and clusters occur)."""

from __future__ import annotations

import pytest
import torch

from lmms_sttm.merging import flashvid, holitom
from lmms_sttm.merging.dpc_knn import dpc_knn
from tests.merging.holitom_flashvid_reference import (
    density_peaks,
    flashvid_outer_ref,
    holitom_inner_ref,
    holitom_outer_ref,
)

GRID = (6, 3, 4)


def clip(seed: int, still: float = 0.15, grid=GRID, channels: int = 8) -> torch.Tensor:
    """``[T, P, C]``: a base frame drifting slowly; some positions change a lot at random frames."""
    g = torch.Generator().manual_seed(seed)
    t, h, w = grid
    base = torch.randn(h * w, channels, generator=g)
    frames = [base]
    for _ in range(t - 1):
        jump = (torch.rand(h * w, 1, generator=g) < 0.3).float()
        step = still * torch.randn(h * w, channels, generator=g) + jump * torch.randn(
            h * w, channels, generator=g
        )
        frames.append(frames[-1] + step)
    return torch.stack(frames)


def as_groups(plan, n: int, dropped: set[int]) -> dict:
    """``{rep: (members without the dropped tokens, feature)}`` of a plan over ``n`` tokens."""
    out = {}
    for row, rep in enumerate(plan.rep_index.tolist()):
        members = {i for i in range(n) if int(plan.token_map[i]) == row} - dropped
        out[rep] = (members, plan.features[row].double())
    return out


def assert_same(plan, ref: dict, n: int) -> None:
    covered = set().union(*(m for m, _ in ref.values())) if ref else set()
    ours = as_groups(plan, n, set(range(n)) - covered)
    assert set(ours) == set(ref)
    for rep, (members, feat) in ref.items():
        assert ours[rep][0] == members, rep
        assert torch.allclose(ours[rep][1], feat, atol=1e-5), rep


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(
    ("retain", "tau", "contextual"), [(0.3, 0.8, 1.0), (0.5, 0.9, 0.5), (0.25, 0.6, 0.0)]
)
def test_holitom_outer_matches_the_loop_reference(seed, retain, tau, contextual):
    x = clip(seed)
    scores = torch.rand(GRID[0], GRID[1] * GRID[2], generator=torch.Generator().manual_seed(seed))
    s = holitom.OuterSettings(retain, tau=tau, beta=0.6, contextual=contextual)
    plan = holitom.holitom_outer(x.reshape(-1, 8), GRID, s, scores)
    assert_same(
        plan, holitom_outer_ref(x, retain, tau, 0.6, contextual, scores=scores), x.shape[0] * x.shape[1]
    )


def test_holitom_outer_finds_windows_and_merges_static_tokens():
    x = clip(1, still=0.02)
    windows, saved = holitom.select_windows(holitom.static_counts(holitom.frame_similarity(x) > 0.8), 1024)
    assert saved > 0 and any(b > a for a, b in windows)
    assert [a for a, _ in windows][0] == 0 and windows[-1][1] == GRID[0] - 1


def test_holitom_dominant_tokens_need_vision_scores():
    with pytest.raises(ValueError, match="vision tower's attention"):
        holitom.holitom_outer(clip(0).reshape(-1, 8), GRID, holitom.OuterSettings(0.3, contextual=0.0))


@pytest.mark.parametrize("seed", range(3))
def test_holitom_inner_is_the_sequential_average(seed):
    g = torch.Generator().manual_seed(seed)
    h, scores = torch.randn(30, 6, generator=g), torch.rand(30, generator=g)
    plan = holitom.holitom_inner(h, scores, 12)
    assert_same(plan, holitom_inner_ref(h, scores, 12), 30)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(
    ("selection", "retention", "min_segments"),
    [("div", 0.3, 3), ("attn_div", 0.25, 2), ("attn_div_v2", 0.3, 4), ("attn", 0.5, 6), ("div", 0.1, 1)],
)
def test_flashvid_outer_matches_the_loop_reference(seed, selection, retention, min_segments):
    x = clip(seed)
    scores = torch.rand(GRID[0], GRID[1] * GRID[2], generator=torch.Generator().manual_seed(seed + 9))
    s = flashvid.OuterSettings(retention, min_segments=min_segments, selection=selection)
    plan = flashvid.flashvid_outer(x.reshape(-1, 8), GRID, s, scores)
    assert_same(plan, flashvid_outer_ref(x, s, scores), x.shape[0] * x.shape[1])


def test_flashvid_attention_selection_needs_vision_scores():
    s = flashvid.OuterSettings(0.3, selection="attn_div_v2")
    with pytest.raises(ValueError, match="vision tower's attention"):
        flashvid.flashvid_outer(clip(0).reshape(-1, 8), GRID, s)


def test_flashvid_inner_keeps_the_most_attended():
    scores = torch.tensor([0.1, 0.5, 0.2, 0.9, 0.3])
    plan = flashvid.flashvid_inner(torch.randn(5, 4), scores, flashvid.inner_count(5, 0.3))
    assert plan.rep_index.tolist() == [1, 3]  # ceil(5 * 0.3) = 2


def test_dpc_knn_centres_by_hand():
    # a tight pair (equal densities, the highest: token 0 counts as denser, so it alone has no
    # denser token and delta = the largest distance), a looser pair (token 2 denser than 3, its
    # delta the distance to the tight pair) and a far point (density ~0): one centre per pair first
    x = torch.tensor([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.0, 5.3], [20.0, 0.0]])
    centres, dist = dpc_knn(x, 3, 2)
    assert centres.tolist()[:2] == [0, 2]
    assert torch.allclose(dist[0, 1], torch.tensor(0.1 / 2**0.5))


@pytest.mark.parametrize("seed", range(3))
def test_dpc_knn_matches_the_definitions(seed):
    x = torch.randn(15, 5, generator=torch.Generator().manual_seed(seed))
    centres, _ = dpc_knn(x, 4, 3)
    assert centres.tolist() == density_peaks(list(x), 4, 3)[0]


def test_the_reference_cases_merge_across_frames_and_within_frames():
    """The clips above exercise what the references check: tokens merged over time and in space."""
    p = GRID[1] * GRID[2]
    x = clip(0)
    for plan in (
        holitom.holitom_outer(x.reshape(-1, 8), GRID, holitom.OuterSettings(0.3)),
        flashvid.flashvid_outer(x.reshape(-1, 8), GRID, flashvid.OuterSettings(0.3, min_segments=3)),
    ):
        frames = [{int(i) // p for i in torch.nonzero(plan.token_map == row)} for row in range(plan.num_kept)]
        positions = [
            {int(i) % p for i in torch.nonzero(plan.token_map == row)} for row in range(plan.num_kept)
        ]
        assert any(len(f) > 1 for f in frames) and any(len(q) > 1 for q in positions)
