"""Document order that keeps each video's questions on one rank under lmms-eval's strided sharding,
the same for every world size.

lmms-eval gives rank ``r`` of ``W`` the documents ``r, r+W, r+2W, ...``, which scatters a video's
questions over ranks and defeats prefix reuse (one prefill per video per rank). ``process_docs``
reorders the documents for ``SLOTS = 8`` virtual ranks: videos are dealt to slots (largest
first, to the least loaded slot), then laid out so that position ``p`` holds a document of slot
``p % 8``. A world size that divides 8 (1, 2, 4, 8 processes) gives rank ``r`` the slots
``r, r+W, ...``, so every video stays whole on one rank; other world sizes are correct, with
some videos prefilled on two ranks. When the slots' loads differ by more than one document, the
last positions take documents from the longest remaining lists, so a video is split only where
whole videos cannot balance the slots.

The order does not depend on ``WORLD_SIZE``: a ``doc_id`` names the same question in a run on 1, 2,
4 or 8 processes, so ``--use_cache`` resumes a run on another GPU count.
"""

from __future__ import annotations

from collections import defaultdict

#: virtual ranks of the document order (see the module docstring)
SLOTS = 8


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


def shard_by_video(dataset, video_field: str, slots: int = SLOTS):
    """``dataset`` (a ``datasets.Dataset``) reordered with :func:`video_major_order` for ``slots``."""
    return dataset.select(video_major_order([str(v) for v in dataset[video_field]], slots))
