"""Putting a stage's kept tokens back into the sequence, block by block.

A stage returns a plan over the current video tokens ``hidden[0, video.rows]``. Each kept token
belongs to the frame block of the token whose position it takes (``Reduction.position_source``):
the block's text (timestamps, start/end tokens, frame labels) stays in place and the block's kept
tokens take the place of its tokens, in the plan's row order (raster order for most methods). A
block may end up empty; its text stays. With one block this is the plain splice
``[pre, kept, post]``.

``reorder`` first puts the plan's rows in that sequence order (block by block, the plan's order
within a block), so that the order later stages see, the composed plan and the kept features
agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lmms_sttm.engine.span import VideoRows
from lmms_sttm.merging.reduction import Reduction


@dataclass(frozen=True)
class Spliced:
    """The chunk after one stage.

    Attributes:
        order: ``[q']`` int64 into ``cat(text rows, kept tokens)``: the new sequence.
        text_rows: ``[q - n]`` int64 old rows of the text tokens.
        video: the kept tokens' rows in the new sequence and their blocks.
    """

    order: torch.Tensor
    text_rows: torch.Tensor
    video: VideoRows

    def gather(self, text: torch.Tensor, kept: torch.Tensor, dim: int = -1) -> torch.Tensor:
        """``cat(text [..., q - n, ...], kept [..., n', ...])`` along ``dim`` in sequence order."""
        both = torch.cat([text, kept], dim=dim)
        return both.index_select(dim, self.order.to(both.device))


def in_sequence_order(plan: Reduction, blocks: torch.Tensor) -> Reduction:
    """``plan`` with its rows sorted by the block of their position source (stable)."""
    kept_blocks = blocks.to(plan.rep_index.device).index_select(0, plan.position_source)
    if plan.num_kept < 2 or bool((kept_blocks[1:] >= kept_blocks[:-1]).all()):
        return plan
    return plan.reorder(torch.sort(kept_blocks, stable=True).indices)


def splice(q: int, video: VideoRows, plan: Reduction) -> Spliced:
    """Where everything goes after ``plan`` (rows already in sequence order: :func:`in_sequence_order`).

    ``q``: chunk length; ``video``: the current video tokens (``n`` = ``plan.num_original`` of the
    stage). Text rows keep their relative order; block ``b``'s kept tokens go where block ``b``'s
    first token was.
    """
    device = video.rows.device
    is_video = torch.zeros(q, dtype=torch.bool, device=device)
    is_video[video.rows] = True
    text_rows = (~is_video).nonzero().flatten()
    source = plan.position_source.to(device)
    kept_blocks = video.blocks.index_select(0, source)
    first_row = torch.full((int(video.blocks.max()) + 1,), q, dtype=torch.long, device=device)
    first_row.scatter_reduce_(0, video.blocks, video.rows, reduce="amin")
    keys = torch.cat([text_rows, first_row.index_select(0, kept_blocks)])
    order = torch.sort(keys, stable=True).indices
    where = torch.empty_like(order)
    where[order] = torch.arange(order.numel(), device=device)
    kept_rows = where[text_rows.numel() :]
    return Spliced(order, text_rows, VideoRows(kept_rows, kept_blocks))


def spliced_positions(
    rule: str, previous: torch.Tensor, video: VideoRows, plan: Reduction, spliced: Spliced
) -> torch.Tensor:
    """Positions of the chunk after one stage, where ``previous`` (``[1, q]`` / ``[3, 1, q]``) are
    its positions before the stage (the video in the first chunk on an empty cache).

    ``renumber`` (1-D RoPE only): ``0..q'-1``. ``original``: text keeps its ids, kept token ``j``
    takes the ids of the token ``plan.position_source[j]`` (its representative, or
    ``Reduction.position_index``).
    """
    if rule == "renumber":
        if previous.dim() != 2:
            raise ValueError("renumbered positions need 1-D RoPE positions [1, q]")
        return torch.arange(spliced.order.numel(), device=previous.device)[None]
    if rule != "original":
        raise ValueError(f"unknown position rule {rule!r}")
    device = previous.device
    text = previous.index_select(-1, spliced.text_rows.to(device))
    source = video.rows.index_select(0, plan.position_source.to(video.rows.device))
    return spliced.gather(text, previous.index_select(-1, source.to(device)))
