"""Video-major document order: a permutation that keeps videos on one rank under strided sharding."""

from __future__ import annotations

import random

import datasets
import pytest

from lmms_sttm.tasks.common.sharding import shard_by_video, video_major_order


def _rank_of(order: list[int], world: int) -> dict[int, int]:
    return {doc: p % world for p, doc in enumerate(order)}


@pytest.mark.parametrize("world", [2, 3, 4])
def test_whole_videos_per_rank_when_balanced(world):
    rng = random.Random(world)
    videos = [f"v{rng.randrange(12)}" for _ in range(48)]
    order = video_major_order(videos, world)
    assert sorted(order) == list(range(48))
    rank = _rank_of(order, world)
    split = {v for v in set(videos) if len({rank[i] for i, w in enumerate(videos) if w == v}) > 1}
    # loads are balanced by splitting at most one video per rank boundary
    assert len(split) <= world - 1
    counts = [sum(1 for r in rank.values() if r == k) for k in range(world)]
    assert max(counts) - min(counts) <= 1


def test_four_tries_per_video_stay_together_on_two_ranks():
    videos = [f"v{i // 4}" for i in range(24)]  # VNBench layout: 4 consecutive tries per video
    order = video_major_order(videos, 2)
    rank = _rank_of(order, 2)
    for v in range(6):
        assert len({rank[i] for i in range(4 * v, 4 * v + 4)}) == 1
    assert video_major_order(videos, 1) == list(range(24))


@pytest.mark.parametrize("world", [1, 2, 4, 8])
def test_dataset_order_is_the_same_for_every_world_size_and_keeps_videos_whole(monkeypatch, world):
    ds = datasets.Dataset.from_dict({"video_id": [f"v{i // 2}" for i in range(32)], "q": list(range(32))})
    monkeypatch.setenv("WORLD_SIZE", str(world))
    out = shard_by_video(ds, "video_id")["q"]
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert out == shard_by_video(ds, "video_id")["q"]  # doc ids do not depend on the world size
    assert sorted(out) == list(range(32))
    ranks = {q: p % world for p, q in enumerate(out)}
    assert all(ranks[2 * v] == ranks[2 * v + 1] for v in range(16))
