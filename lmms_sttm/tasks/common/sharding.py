"""Document order that keeps each video's questions on one rank under lmms-eval's strided sharding.

lmms-eval gives rank ``r`` of ``W`` the documents ``r, r+W, r+2W, ...``, which scatters a video's
questions over ranks and defeats prefix reuse (one prefill per video per rank). ``process_docs``
reorders the documents when ``WORLD_SIZE > 1``: videos are dealt to ranks (largest first, to the
least loaded rank), then laid out so that position ``p`` holds a document of rank ``p % W``. When
the ranks' loads differ by more than one document, the last positions take documents from the
longest remaining lists, so a video is split only where whole videos cannot balance the ranks.
In one process the order is unchanged. Metrics do not depend on the order; ``doc_id``s do, so
compare runs of different world sizes by ``question_id``.
"""

from __future__ import annotations

import os
from collections import defaultdict


def video_major_order(videos: list[str], world_size: int) -> list[int]:
    """A permutation of ``range(len(videos))`` (see module docstring); identity for one rank."""
    if world_size <= 1:
        return list(range(len(videos)))
    by_video: dict[str, list[int]] = defaultdict(list)
    for i, v in enumerate(videos):
        by_video[v].append(i)
    ranks: list[list[int]] = [[] for _ in range(world_size)]
    for members in sorted(by_video.values(), key=lambda m: (-len(m), m[0])):
        min(ranks, key=len).extend(members)
    queues = [list(reversed(r)) for r in ranks]  # pop() from the end = take in order
    order = []
    for p in range(len(videos)):
        own = queues[p % world_size]
        source = own if own else max(queues, key=len)
        order.append(source.pop())
    return order


def shard_by_video(dataset, video_field: str, world_size: int | None = None):
    """``dataset`` (a ``datasets.Dataset``) reordered with :func:`video_major_order`."""
    world = int(os.environ.get("WORLD_SIZE", 1)) if world_size is None else world_size
    if world <= 1:
        return dataset
    return dataset.select(video_major_order([str(v) for v in dataset[video_field]], world))
