"""Where the video's grid tokens sit in a chunk: one run, or one run per frame block.

The reducer always sees the grid's ``T*H*W`` tokens stacked in raster order. In the sequence they
are either one contiguous run of placeholders (LLaVA, Qwen2-VL) or one run per frame block with
text in between (Qwen3-VL: ``<t seconds><|vision_start|>`` ... ``<|vision_end|>`` around each
temporal patch; InternVL: ``Frame{i}: <img>`` ... ``</img>`` around each frame). That text stays in
place in every segment.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class VideoRows:
    """The current video tokens of a chunk.

    Attributes:
        rows: ``[n]`` int64, the chunk row of each video token, in the order the stages see them
            (raster order of the grid at the first stage).
        blocks: ``[n]`` int64, the frame block of each token (all 0 for a one-run layout).
    """

    rows: torch.Tensor
    blocks: torch.Tensor

    @classmethod
    def run(cls, start: int, n: int, device=None) -> VideoRows:
        """One contiguous run ``[start, start + n)``."""
        rows = torch.arange(start, start + n, device=device)
        return cls(rows, torch.zeros(n, dtype=torch.long, device=device))

    @property
    def start(self) -> int:
        """Row of the first video token."""
        return int(self.rows.min())

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def to(self, device) -> VideoRows:
        return VideoRows(self.rows.to(device), self.blocks.to(device))


def _runs(hits: torch.Tensor) -> list[tuple[int, int]]:
    """Maximal runs ``(start, stop)`` of consecutive indices in sorted ``hits [m]``."""
    breaks = (hits[1:] != hits[:-1] + 1).nonzero().flatten() + 1
    edges = [0, *breaks.tolist(), hits.numel()]
    return [(int(hits[a]), int(hits[b - 1]) + 1) for a, b in zip(edges, edges[1:], strict=False)]


def locate_video(
    input_ids: torch.Tensor | None,
    video_token_id: int | None,
    grid: tuple[int, int, int],
    *,
    blocks: bool = False,
    extra_allowed: tuple[int, ...] = (0,),
    span_start: int | None = None,
) -> VideoRows | None:
    """The grid's tokens in ``input_ids [1, q]``, or None if the chunk has no placeholder.

    One-run layouts (``blocks=False``): the placeholders form one contiguous run of
    ``T*H*W + e`` tokens for an ``e`` in ``extra_allowed`` (LLaVA-OneVision's trailing
    ``image_newline`` is ``e = 1``); the grid tokens are the first ``T*H*W``. Block layouts: ``B``
    runs of equal length, ``B`` dividing ``T`` and each run holding ``T/B`` whole frames; block ``b``
    holds grid frames ``[b*T/B, (b+1)*T/B)``. ``span_start`` overrides the search (text-only
    decoders, calls with ``inputs_embeds``): one run from there.
    """
    t, h, w = grid
    num_tokens = t * h * w
    if span_start is not None:
        device = input_ids.device if input_ids is not None else None
        return VideoRows.run(int(span_start), num_tokens, device)
    if input_ids is None or video_token_id is None:
        raise ValueError(
            "reduction engine: cannot find the video span (no input_ids or no video token id); pass span_start"
        )
    hits = (input_ids[0] == video_token_id).nonzero().flatten()
    if hits.numel() == 0:
        return None
    runs = _runs(hits)
    if not blocks:
        if len(runs) != 1:
            raise ValueError(
                "reduction engine: video placeholders are not one contiguous run (one video per sample)"
            )
        if hits.numel() - num_tokens not in extra_allowed:
            raise ValueError(
                f"reduction engine: {hits.numel()} video placeholders do not fit a grid of {num_tokens} tokens"
                f" (+{list(extra_allowed)} extra)"
            )
        return VideoRows.run(runs[0][0], num_tokens, input_ids.device)
    lengths = {stop - start for start, stop in runs}
    per_block = num_tokens // len(runs) if num_tokens % len(runs) == 0 else -1
    if hits.numel() != num_tokens or lengths != {per_block} or per_block % (h * w):
        raise ValueError(
            f"reduction engine: {len(runs)} placeholder blocks of {sorted(lengths)} tokens do not fit a grid "
            f"{tuple(grid)} split into whole frames per block (one video per sample)"
        )
    block = torch.arange(len(runs), device=input_ids.device).repeat_interleave(per_block)
    return VideoRows(hits, block)


def has_video_tokens(input_ids: torch.Tensor | None, video_token_id: int | None) -> bool:
    """Whether ``input_ids`` contains any video placeholder."""
    return input_ids is not None and video_token_id is not None and bool((input_ids == video_token_id).any())
