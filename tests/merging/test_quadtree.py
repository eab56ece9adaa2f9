"""Spatial quadtree rules: level sizes, odd-grid pooling, the stop test and its unused-slot quirk."""

from __future__ import annotations

import pytest
import torch
from sttm_inputs import one_thread

from lmms_sttm.merging.quadtree import axis_pyramid, level_sizes, pair_dots
from lmms_sttm.merging.sttm import merge_video


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.mark.parametrize(
    ("grid", "expected"),
    [
        ((14, 14), [(2, 2), (4, 4), (7, 7), (14, 14)]),
        ((13, 23), [(2, 3), (4, 6), (7, 12), (13, 23)]),
        ((27, 27), [(2, 2), (4, 4), (7, 7), (14, 14), (27, 27)]),
        ((7, 5), [(2, 2), (4, 3), (7, 5)]),
        ((4, 4), [(2, 2), (4, 4)]),
        ((2, 9), [(2, 9)]),
        ((1, 5), [(1, 2), (1, 3), (1, 5)]),
        ((1, 1), [(1, 1)]),
    ],
)
def test_level_sizes_halve_with_ceil_until_a_side_is_two(grid, expected):
    assert level_sizes(*grid) == expected


def test_axis_spans_pool_the_first_index_alone_on_odd_lengths():
    ax = axis_pyramid([4, 7, 14], torch.device("cpu"))
    # 7 -> 4: [0], [1, 2], [3, 4], [5, 6]; each 7-cell covers two of the 14 leaves.
    assert ax.lo[0].tolist() == [0, 2, 6, 10]
    assert ax.hi[0].tolist() == [2, 6, 10, 14]
    assert ax.count[0].tolist() == [1, 2, 2, 2]
    assert ax.anc[0].tolist() == [0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]
    assert ax.weight[0][:4].tolist() == [0.5, 0.5, 0.25, 0.25]


def _roots_only(x: torch.Tensor):
    """Every root stops (tau_s = -1), root level 0: the coarsest level's pooled cells."""
    return merge_video(x, -1.0, 0.0, root_level=0)


def test_odd_by_odd_grid_pools_corner_alone_then_stripes_then_blocks():
    x = torch.arange(9 * 2, dtype=torch.float32).view(1, 3, 3, 2) ** 1.5 + 1
    f = x[0]
    r = _roots_only(x)  # 3x3 -> 2x2
    assert r.tlbr.tolist() == [[0, 0, 0, 1, 1], [0, 0, 1, 1, 3], [0, 1, 0, 3, 1], [0, 1, 1, 3, 3]]
    assert r.num_patches.tolist() == [1, 2, 2, 4]
    expected = torch.stack(
        [
            f[0, 0],
            (f[0, 1] + f[0, 2]) / 2,
            (f[1, 0] + f[2, 0]) / 2,
            (f[1, 1] + f[1, 2] + f[2, 1] + f[2, 2]) / 4,
        ]
    )
    torch.testing.assert_close(r.features, expected)
    assert r.token_map.view(3, 3).tolist() == [[0, 1, 1], [2, 3, 3], [2, 3, 3]]


def test_odd_height_pools_first_row_in_horizontal_pairs():
    x = torch.randn(1, 3, 4, 3, generator=torch.Generator().manual_seed(1))
    f = x[0]
    r = _roots_only(x)  # 3x4 -> 2x2
    assert r.tlbr.tolist() == [[0, 0, 0, 1, 2], [0, 0, 2, 1, 4], [0, 1, 0, 3, 2], [0, 1, 2, 3, 4]]
    torch.testing.assert_close(r.features[0], (f[0, 0] + f[0, 1]) / 2)
    torch.testing.assert_close(r.features[3], f[1:3, 2:4].reshape(4, 3).mean(0))


def test_odd_width_pools_first_column_in_vertical_pairs():
    x = torch.randn(1, 4, 3, 3, generator=torch.Generator().manual_seed(2))
    f = x[0]
    r = _roots_only(x)  # 4x3 -> 2x2
    assert r.tlbr.tolist() == [[0, 0, 0, 2, 1], [0, 0, 1, 2, 3], [0, 2, 0, 4, 1], [0, 2, 1, 4, 3]]
    torch.testing.assert_close(r.features[2], (f[2, 0] + f[3, 0]) / 2)


def test_coarse_cells_are_means_of_child_means():
    x = torch.randn(1, 7, 7, 4, generator=torch.Generator().manual_seed(3))
    f = x[0]
    r = _roots_only(x)  # 7x7 -> 4x4 -> 2x2; root (0, 0) covers leaves 0..2 x 0..2 non-uniformly
    assert r.tlbr[0].tolist() == [0, 0, 0, 3, 3]
    assert r.num_patches[0] == 9
    expected = (
        f[0, 0] / 4 + (f[0, 1] + f[0, 2] + f[1, 0] + f[2, 0]) / 8 + f[1:3, 1:3].reshape(4, 4).sum(0) / 16
    )
    torch.testing.assert_close(r.features[0], expected)


def _stripes_differ_from_corner() -> torch.Tensor:
    """3x3 frame: corner e1, top stripe and left stripe near e0, bottom-right block uniform."""
    e0, e1 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    x = torch.empty(1, 3, 3, 2)
    x[0, 0, 0] = e1
    x[0, 0, 1], x[0, 0, 2] = e0 + 0.1 * e1, e0 - 0.1 * e1
    x[0, 1, 0], x[0, 2, 0] = e0 + 0.1 * e1, e0 - 0.1 * e1
    x[0, 1:, 1:] = e0 + e1
    return x


def test_unused_child_slots_are_compared_with_the_top_left_child_by_default():
    x = _stripes_differ_from_corner()
    # Each stripe is similar to both its children (cos 0.995), but not to the corner leaf e1.
    unmasked = merge_video(x, 0.9, 0.0, root_level=0)
    masked = merge_video(x, 0.9, 0.0, root_level=0, mask_unused_slots=True)
    assert unmasked.tlbr.tolist() == [
        [0, 0, 0, 1, 1],
        [0, 0, 1, 1, 2],
        [0, 0, 2, 1, 3],
        [0, 1, 0, 2, 1],
        [0, 1, 1, 3, 3],
        [0, 2, 0, 3, 1],
    ]
    assert masked.tlbr.tolist() == [[0, 0, 0, 1, 1], [0, 0, 1, 1, 3], [0, 1, 0, 3, 1], [0, 1, 1, 3, 3]]


def test_unused_slot_quirk_at_llava_scale():
    # 14x14 frame, left 7 columns A, right 7 columns B (orthogonal); 4x4 root, tau_s = 0.95.
    x = torch.empty(1, 14, 14, 2)
    x[:, :, :7] = torch.tensor([1.0, 0.0])
    x[:, :, 7:] = torch.tensor([0.0, 1.0])
    masked = merge_video(x, 0.95, 0.0, mask_unused_slots=True)
    unmasked = merge_video(x, 0.95, 0.0)
    # Roots of columns 0, 1, 3 stop (12); root column 2 (leaf cols 6-9) splits: per 7x7 row, the
    # mixed 7x7 cell (cols 6-7) splits into 2x2 leaves and the pure one (cols 8-9) stops (7 * 5).
    assert masked.num_kept == 12 + 35
    # The top-row stripe root over leaf cols 10-13 is pure B, but is also tested against the
    # frame's top-left 7x7 cell (A), so it splits into its two 7x7 cells.
    assert unmasked.num_kept == 12 + 35 + 1
    assert [0, 0, 10, 2, 14] in masked.tlbr.tolist()
    assert [0, 0, 10, 2, 12] in unmasked.tlbr.tolist() and [0, 0, 12, 2, 14] in unmasked.tlbr.tolist()


def test_threshold_extremes():
    x = torch.randn(2, 14, 14, 8, generator=torch.Generator().manual_seed(4))
    assert merge_video(x, 1.01, 0.0).num_kept == 2 * 196
    roots = merge_video(x, -1.0, 0.0)
    assert roots.num_kept == 2 * 16
    assert roots.num_patches.tolist()[:4] == [4, 8, 8, 8]


def test_pair_dots_matches_gathered_rows():
    gen = torch.Generator().manual_seed(5)
    a, b = torch.randn(7, 5, generator=gen), torch.randn(4, 5, generator=gen)
    ia = torch.tensor([0, 0, 2, 5, 5, 6])
    ib = torch.tensor([1, 3, 0, 0, 2, 3])
    expected = (a[ia] * b[ib]).sum(-1)
    torch.testing.assert_close(pair_dots(a, ia, b, ib), expected)
    torch.testing.assert_close(pair_dots(a.double(), ia, b.double(), ib), expected.double())
