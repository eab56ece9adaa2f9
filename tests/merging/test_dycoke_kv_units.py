"""DyCoke stage 2's rule (``merging/dycoke_kv.py``) on hand-worked values: the settings' defaults and
validation, the kept count, the pruned range of both spans, the kept cache indices and the presets."""

from __future__ import annotations

import pytest
import torch

from lmms_sttm.merging.dycoke_kv import MODES, SPANS, KvPruning, keep_entries


def test_defaults_are_the_authors_settings():
    config = KvPruning()
    assert (config.layer, config.prune, config.similarity, config.span) == (3, 0.8, None, "authors")
    assert SPANS == ("authors", "video")


def test_presets():
    assert set(MODES) == {"authors", "video", "gated"}
    assert MODES["authors"] == KvPruning(layer=3, prune=0.8, similarity=None, span="authors")
    assert MODES["video"] == KvPruning(layer=3, prune=0.8, similarity=None, span="video")
    assert MODES["gated"] == KvPruning(layer=3, prune=0.8, similarity=0.9, span="video")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"span": "all"}, r"^KV pruning span 'all' is not one of \['authors', 'video'\]$"),
        (
            {"similarity": 0.9},
            r"^the KV pruning similarity gate compares equal-length scores: it needs span='video'$",
        ),
        ({"layer": 0}, r"^KV pruning reads layer L-1's attention: L must be >= 1, got 0$"),
        ({"layer": -2}, r"^KV pruning reads layer L-1's attention: L must be >= 1, got -2$"),
        ({"prune": 1.0}, r"^KV prune ratio must be in \[0, 1\), got 1.0$"),
        ({"prune": -0.25}, r"^KV prune ratio must be in \[0, 1\), got -0.25$"),
    ],
)
def test_invalid_settings_are_refused_with_their_message(kwargs, message):
    with pytest.raises(ValueError, match=message):
        KvPruning(**kwargs)


def test_boundary_settings_are_accepted():
    assert KvPruning(layer=1).layer == 1
    assert KvPruning(prune=0.0).prune == 0.0
    assert KvPruning(prune=0.999).prune == 0.999
    gated = KvPruning(similarity=0.5, span="video")
    assert (gated.similarity, gated.span) == (0.5, "video")
    assert KvPruning(similarity=None, span="video").similarity is None


@pytest.mark.parametrize(
    ("prune", "count", "keep"),
    [(0.5, 7, 3), (0.75, 10, 2), (0.75, 12, 3), (0.0, 9, 9), (0.6, 5, 2), (0.9, 9, 0)],
)
def test_keep_count_rounds_down(prune, count, keep):
    assert KvPruning(prune=prune).keep_count(count) == keep


def test_pruned_range_of_the_authors_span_counts_from_the_video_start_and_clips():
    config = KvPruning(span="authors")
    # video entries [4, 9) after stage 1; 20 tokens before it: the range runs to 24 of 30 entries
    assert config.pruned_range((4, 9), 30, 20) == (24, 20)
    # a 15-entry cache clips the range's end, the count stays the pre-stage-1 N
    assert config.pruned_range((4, 9), 15, 20) == (15, 20)
    assert config.pruned_range((4, 9), 24, 20) == (24, 20)


def test_pruned_range_of_the_video_span_is_the_cached_video():
    config = KvPruning(span="video")
    assert config.pruned_range((4, 9), 30, 20) == (9, 5)
    assert config.pruned_range((6, 13), 40, None) == (13, 7)


def test_keep_entries_by_hand():
    scores = torch.tensor([0.1, 0.5, 0.3, 0.9])  # range [2, 6) of an 8-entry cache
    got = keep_entries(scores, 2, 8, 2)
    # best two: 0.9 (index 3 -> entry 5) and 0.5 (index 1 -> entry 3), in increasing order
    assert got.tolist() == [0, 1, 3, 5, 6, 7]
    assert got.dtype == torch.int64
    assert keep_entries(scores, 2, 8, 3).tolist() == [0, 1, 3, 4, 5, 6, 7]
    assert keep_entries(scores, 2, 8, 0).tolist() == [0, 1, 6, 7]
    assert keep_entries(scores, 2, 8, 4).tolist() == list(range(8))


def test_keep_entries_at_the_cache_edges():
    scores = torch.tensor([0.7, 0.2, 0.4])
    assert keep_entries(scores, 0, 5, 1).tolist() == [0, 3, 4]  # range at the start
    assert keep_entries(scores, 2, 5, 2).tolist() == [0, 1, 2, 4]  # range up to the end


def test_keep_entries_against_a_loop_reference():
    gen = torch.Generator().manual_seed(3)
    for _ in range(20):
        n = int(torch.randint(1, 12, (1,), generator=gen))
        start = int(torch.randint(0, 6, (1,), generator=gen))
        after = int(torch.randint(0, 6, (1,), generator=gen))
        keep = int(torch.randint(0, n + 1, (1,), generator=gen))
        scores = torch.rand(n, generator=gen)  # distinct almost surely: no ties
        order = sorted(range(n), key=lambda i: -float(scores[i]))[:keep]
        expected = list(range(start)) + sorted(start + i for i in order)
        expected += list(range(start + n, start + n + after))
        assert keep_entries(scores, start, start + n + after, keep).tolist() == expected
