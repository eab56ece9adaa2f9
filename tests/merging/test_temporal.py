"""Temporal rules: nested candidate pairs, chains, the representative and the mean, union-find."""

from __future__ import annotations

import pytest
import torch
from sttm_inputs import one_thread
from sttm_reference import union_find_authors, union_find_exact

from lmms_sttm.merging.quadtree import build_pyramid, spatial_nodes
from lmms_sttm.merging.sttm import merge_video
from lmms_sttm.merging.temporal import best_partner_edges, candidate_pairs, union_find

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


def test_candidate_pairs_are_nested_pairs_across_granularities():
    # T=2, 4x4 leaves under a 2x2 root. Frame 0 keeps root 0 whole and splits roots 1-3 into
    # leaves; frame 1 keeps root 3 whole and splits roots 0-2.
    pyr = build_pyramid(2, 4, 4, 0, CPU)
    root_block = {0: [0, 1, 4, 5], 1: [2, 3, 6, 7], 2: [8, 9, 12, 13], 3: [10, 11, 14, 15]}
    frame0_leaves = [c for r in (1, 2, 3) for c in root_block[r]]
    frame1_leaves = [16 + c for r in (0, 1, 2) for c in root_block[r]]
    emitted = [torch.tensor([0, 4 + 3]), torch.tensor(sorted(frame0_leaves + frame1_leaves))]
    nodes = spatial_nodes(emitted, pyr)
    a, b, _ = candidate_pairs(nodes, 2)
    pairs = {
        (tuple(nodes.tlbr[i, 1:].tolist()), tuple(nodes.tlbr[j, 1:].tolist()))
        for i, j in zip(a, b, strict=True)
    }
    assert len(pairs) == a.numel() == 16
    coarse_to_fine = {((0, 0, 2, 2), (y, x, y + 1, x + 1)) for y in (0, 1) for x in (0, 1)}
    fine_to_coarse = {((y, x, y + 1, x + 1), (2, 2, 4, 4)) for y in (2, 3) for x in (2, 3)}
    same = {
        ((y, x, y + 1, x + 1), (y, x, y + 1, x + 1))
        for y in range(4)
        for x in range(4)
        if (y < 2) != (x < 2)  # the leaves of roots 1 and 2
    }
    assert pairs == coarse_to_fine | fine_to_coarse | same


def test_chain_merges_across_three_frames_transitively():
    # 4x4 frames with a 4x4 root: no spatial merging. Leaf (0, 0) drifts e0 -> e0+e1 -> e1:
    # consecutive cosines 0.71 >= 0.6, but frames 0 and 2 are orthogonal.
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 4, 64, generator=gen)
    x[:, 0, 0] = 0
    x[0, 0, 0, 0] = 1
    x[1, 0, 0, :2] = 1
    x[2, 0, 0, 1] = 1
    r = merge_video(x, 0.9, 0.6)
    assert r.num_kept == 3 * 16 - 2
    assert r.tlbr[0].tolist() == [0, 0, 0, 1, 1] and r.num_patches[0] == 3 and r.rep_index[0] == 0
    assert r.token_map.view(3, 4, 4)[:, 0, 0].tolist() == [0, 0, 0]
    torch.testing.assert_close(r.features[0], x[:, 0, 0].mean(0))
    assert (r.num_patches[1:] == 1).all()


def _one_to_many_video() -> torch.Tensor:
    """T=2, 4x4 leaves, 2x2 root. Frame 0 splits its top-left block into 4 orthogonal leaves
    e0..e3; frame 1's top-left block is uniform u = e0 + 0.8 e1 and stops at the root. The other
    blocks are uniform and orthogonal to everything else."""
    e = torch.eye(12)
    x = torch.empty(2, 4, 4, 12)
    x[0, 0, 0], x[0, 0, 1], x[0, 1, 0], x[0, 1, 1] = e[0], e[1], e[2], e[3]
    x[1, :2, :2] = e[0] + 0.8 * e[1]
    for t in range(2):
        x[t, :2, 2:] = e[4 + 3 * t]
        x[t, 2:, :2] = e[5 + 3 * t]
        x[t, 2:, 2:] = e[6 + 3 * t]
    return x


def test_representative_is_the_earliest_top_left_member_and_features_are_the_mean():
    x = _one_to_many_video()
    # Frame 0 nodes (raster by top-left): e0 [0], e1 [1], root1 [2], e2 [3], e3 [4], root2 [5],
    # root3 [6]; frame 1: root0 [7] .. root3 [10]. Root0 of frame 1 links to e0 (cos 0.78) and
    # e1 (cos 0.62), so e0, e1 and that root form one token at e0's slot (exact components).
    r = merge_video(x, 0.9, 0.6, root_level=0, union_find="components")
    assert r.num_kept == 11 - 2
    assert r.tlbr[0].tolist() == [0, 0, 0, 1, 1]
    assert r.rep_index[0] == 0
    assert r.num_patches[0] == 1 + 1 + 4
    u = x[1, 0, 0]
    torch.testing.assert_close(r.features[0], (x[0, 0, 0] + x[0, 0, 1] + u) / 3)
    assert r.token_map.view(2, 4, 4)[0, 0].tolist() == [0, 0, 1, 1]
    assert r.token_map.view(2, 4, 4)[1, :2, :2].flatten().tolist() == [0] * 4
    assert r.tlbr[1].tolist() == [0, 0, 2, 2, 4]  # e1 no longer has a token of its own

    weighted = merge_video(x, 0.9, 0.6, root_level=0, weighted=True, union_find="components")
    torch.testing.assert_close(weighted.features[0], (x[0, 0, 0] + x[0, 0, 1] + 4 * u) / 6)


def test_best_partner_and_the_authors_stop_rule_keep_the_second_link_out():
    x = _one_to_many_video()
    best = merge_video(x, 0.9, 0.6, root_level=0, best_partner=True, union_find="components")
    authors = merge_video(x, 0.9, 0.6, root_level=0)  # the default: the authors' rounds
    assert torch.equal(
        authors.token_map, merge_video(x, 0.9, 0.6, root_level=0, union_find="authors").token_map
    )
    for r in (best, authors):
        assert r.num_kept == 11 - 1  # only e0 and the frame-1 root merge
        assert r.num_patches[:2].tolist() == [5, 1]
        torch.testing.assert_close(r.features[0], (x[0, 0, 0] + x[1, 0, 0]) / 2)


def test_union_find_labels_components_by_smallest_index():
    a = torch.tensor([0, 3, 7, 8])
    b = torch.tensor([5, 5, 8, 2])
    assert union_find(10, a, b, rule="components").tolist() == [0, 1, 2, 0, 4, 0, 6, 2, 2, 9]
    assert union_find(6, torch.tensor([0, 3]), torch.tensor([5, 5]), rule="components").tolist() == [
        0,
        1,
        2,
        0,
        4,
        0,
    ]
    # The authors' stop test (the default) ends after one round here: node 3 keeps its own label.
    assert union_find(6, torch.tensor([0, 3]), torch.tensor([5, 5])).tolist() == [
        0,
        1,
        2,
        3,
        4,
        0,
    ]


def test_union_find_joins_a_ladder_closed_at_the_far_end():
    # Two chains over 64 "frames" joined only at the end: the slow case for label propagation.
    n = 64
    a = torch.cat([torch.arange(0, 2 * n - 2, 2), torch.arange(1, 2 * n - 2, 2), torch.tensor([2 * n - 2])])
    b = torch.cat([torch.arange(2, 2 * n, 2), torch.arange(3, 2 * n, 2), torch.tensor([2 * n - 1])])
    assert union_find(2 * n, a, b, rule="components").tolist() == [0] * (2 * n)


@pytest.mark.parametrize("seed", range(5))
def test_union_find_matches_textbook_union_find(seed):
    gen = torch.Generator().manual_seed(seed)
    n = 200
    a = torch.randint(0, n, (150,), generator=gen)
    b = torch.randint(0, n, (150,), generator=gen)
    edges = [(int(i), int(j)) for i, j in zip(a, b, strict=True)]
    assert union_find(n, a, b, rule="components").tolist() == union_find_exact(n, edges)
    assert union_find(n, a, b).tolist() == union_find_authors(n, edges)


def test_best_partner_prefers_highest_similarity_then_smallest_index():
    a = torch.tensor([0, 1, 2, 3, 4, 5])
    b = torch.tensor([9, 9, 9, 8, 8, 7])
    sims = torch.tensor([0.7, 0.9, 0.9, 0.6, 0.5, 0.8])
    kept = best_partner_edges(a, b, sims)
    assert sorted(zip(a[kept].tolist(), b[kept].tolist(), strict=True)) == [(1, 9), (3, 8), (5, 7)]


def test_temporal_off_or_single_frame_is_spatial_only():
    x = torch.randn(3, 7, 5, 8, generator=torch.Generator().manual_seed(1))
    spatial = merge_video(x, 0.5, 0.0)
    for tau_t in (0.0, -0.5):
        r = merge_video(x, 0.5, tau_t)
        assert torch.equal(r.tlbr, spatial.tlbr) and torch.equal(r.features, spatial.features)
    assert spatial.num_patches.sum() == 3 * 35 and int(spatial.tlbr[:, 0].max()) == 2
    single = merge_video(x[:1], 0.5, 0.9)
    assert torch.equal(single.tlbr, spatial.tlbr[spatial.tlbr[:, 0] == 0])
