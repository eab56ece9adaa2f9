"""Locating the video span (the grid's T*H*W tokens) inside a chunk of the sequence."""

from __future__ import annotations

import torch


def locate_video_span(
    input_ids: torch.Tensor | None,
    video_token_id: int | None,
    num_tokens: int,
    extra_allowed: tuple[int, ...] = (0,),
    span_start: int | None = None,
) -> int | None:
    """Start index of the video's ``num_tokens`` grid tokens in ``input_ids [1, q]``, or None if absent.

    The placeholders must form one contiguous run whose length is ``num_tokens + e`` for an ``e`` in
    ``extra_allowed`` (LLaVA-OneVision's trailing ``image_newline`` is ``e = 1``); the grid tokens
    are the first ``num_tokens`` of the run. ``span_start`` overrides the search (text-only
    decoders, or calls with ``inputs_embeds``).
    """
    if span_start is not None:
        return int(span_start)
    if input_ids is None or video_token_id is None:
        raise ValueError(
            "reduction engine: cannot find the video span (no input_ids or no video token id); pass span_start"
        )
    hits = (input_ids[0] == video_token_id).nonzero().flatten()
    if hits.numel() == 0:
        return None
    start, stop = int(hits[0]), int(hits[-1]) + 1
    if stop - start != hits.numel():
        raise ValueError(
            "reduction engine: video placeholders are not one contiguous run (one video per sample)"
        )
    if hits.numel() - num_tokens not in extra_allowed:
        raise ValueError(
            f"reduction engine: {hits.numel()} video placeholders do not fit a grid of {num_tokens} tokens"
            f" (+{list(extra_allowed)} extra)"
        )
    return start


def has_video_tokens(input_ids: torch.Tensor | None, video_token_id: int | None) -> bool:
    """Whether ``input_ids`` contains any video placeholder."""
    return input_ids is not None and video_token_id is not None and bool((input_ids == video_token_id).any())
