"""Position ids of the segments (layers below the first stage: full sequence; then one segment per stage).

Shapes: ``"reassign"`` families' positions are ``[1, q]`` (1-D RoPE); ``"survive"`` families'
``[3, 1, q]`` (M-RoPE rows t, h, w). A stage's rule (``stages.py``) is ``renumber`` (1-D only) or
``original`` (kept tokens keep their source's ids): ``splice.spliced_positions``. A segment's *next* position is ``last + 1`` per row
(``[1]`` or ``[3, 1]``), the rule of transformers' ``generate`` and of ``get_rope_index`` for text
that follows a text token.
"""

from __future__ import annotations

import torch


def first_chunk_positions(
    mode: str, supplied: torch.Tensor | None, q: int, device: torch.device
) -> torch.Tensor:
    """Positions of the first chunk on an empty cache, full sequence.

    ``reassign``: ``arange(q)`` ``[1, q]`` (a supplied tensor must equal it).
    ``survive``: the model's own M-RoPE ids; ``supplied`` may be ``[4, 1, q]`` (text row first, as
    ``generate`` builds them), ``[3, 1, q]``, ``[1, q]`` or None (then ``arange``, as the model would).
    """
    arange = torch.arange(q, device=device)[None]
    if mode == "reassign":
        if supplied is not None and not torch.equal(supplied.reshape(1, -1).to(device), arange):
            raise ValueError("reduction engine: first-chunk position_ids must be 0..q-1 for 1-D RoPE models")
        return arange
    if supplied is None:
        return arange[None].expand(3, 1, q).clone()
    if supplied.dim() == 3 and supplied.shape[0] == 4:
        supplied = supplied[1:]
    elif supplied.dim() == 2:
        supplied = supplied[None].expand(3, -1, -1)
    if tuple(supplied.shape) != (3, 1, q):
        raise ValueError(f"reduction engine: unexpected M-RoPE position_ids shape {tuple(supplied.shape)}")
    return supplied.to(device)


def continuation_positions(next_position: torch.Tensor, q: int) -> torch.Tensor:
    """``q`` text tokens after a cached segment: ``next[..., None] + arange(q)`` -> ``[1, q]`` / ``[3, 1, q]``."""
    return next_position[..., None] + torch.arange(q, device=next_position.device)


def next_position(positions: torch.Tensor) -> torch.Tensor:
    """``last + 1`` per row: ``[1, q] -> [1]``, ``[3, 1, q] -> [3, 1]``."""
    return positions[..., -1] + 1
