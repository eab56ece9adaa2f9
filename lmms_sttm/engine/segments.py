"""The segment book of one forward through the text decoder: positions, rotary, masks, cache lengths.

Segment 0 (layers below the first split) sees the chunk at full length ``q``; each later segment
starts at a split layer and sees the chunk after one more stage: ``q_s = q - N + n_s`` when the
chunk holds the video (``n_s`` video tokens left after stage ``s``), else ``q``. Each segment has
its own positions, rotary ``(cos, sin)`` and causal mask, sized by its own cached length.

In the chunk that holds the video (the first chunk on an empty cache) the stage driver
(``stage_driver.py``) opens the segments as its stages run; in later chunks the book opens the
cache's segments at their split layers itself. ``finish`` records the chunk in the cache.

Where the prompt ends is said by the caller, never guessed from a token: a reducing chunk is
either the whole prompt (``prompt_ends``: the next token is generated) or a question-free prefix,
whose next chunk is the question that completes the prompt (``session.prefill(whole_prompt=...)``;
``session.answer`` with an empty question ends the prompt at the prefix). Generated tokens then
take the engine's ``decode_positions``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lmms_sttm.engine.masks import segment_masks
from lmms_sttm.engine.positions import continuation_positions, first_chunk_positions, next_position
from lmms_sttm.engine.segmented_cache import SegmentedCache


@dataclass
class SegmentInputs:
    """What the layers of one segment receive: positions ``[1, q_s]`` / ``[3, 1, q_s]``, rotary, masks
    by layer type (None for segment 0: the decoder's own)."""

    positions: torch.Tensor
    layer_position_ids: torch.Tensor | None = None
    rotary: tuple[torch.Tensor, torch.Tensor] | None = None
    masks: dict | None = None


@dataclass
class SegmentBook:
    """Segments of one active forward.

    Attributes:
        mode: the family's ``"reassign"`` (1-D RoPE) or ``"survive"`` (M-RoPE).
        cache: the segmented cache, or None for a cache-less forward.
        q: chunk length (logical tokens).
        segments: inputs of each segment opened so far (``segments[0]`` holds the full positions).
        nexts_before: each segment's next position before the chunk under the decode rule (None on
            an empty cache); ``counts_before``: the cache's own per-segment counts.
        decode_positions: the engine's rule for tokens after the prompt.
    """

    mode: str
    cache: SegmentedCache | None
    q: int
    segments: list[SegmentInputs]
    nexts_before: list[torch.Tensor | None] | None
    counts_before: list[torch.Tensor | None] | None = None
    decode_positions: str = "authors"

    @classmethod
    def start(
        cls,
        mode: str,
        cache: SegmentedCache | None,
        q: int,
        supplied_positions: torch.Tensor | None,
        device: torch.device,
        decode_positions: str = "authors",
    ) -> SegmentBook:
        """Segment 0 positions: the model's own on an empty cache, else ``next + arange(q)``."""
        if cache is None or cache.logical_length == 0:
            full = first_chunk_positions(mode, supplied_positions, q, device)
            return cls(mode, cache, q, [SegmentInputs(full)], None, decode_positions=decode_positions)
        full = continuation_positions(cache.next_positions[0], q)
        nexts = [cache.next_position_of(s) for s in range(cache.num_segments)]
        counts = list(cache.next_positions)
        return cls(mode, cache, q, [SegmentInputs(full)], nexts, counts, decode_positions)

    @property
    def full_positions(self) -> torch.Tensor:
        return self.segments[0].positions

    @property
    def current_positions(self) -> torch.Tensor:
        return self.segments[-1].positions

    def segment_kwargs(self) -> SegmentInputs | None:
        """The inputs the current layer gets (None in segment 0: the decoder's own)."""
        return self.segments[-1] if len(self.segments) > 1 else None

    def open(self, text_model: nn.Module, hidden: torch.Tensor, positions: torch.Tensor) -> None:
        """Opens the next segment for ``hidden [1, q_s, C]`` at ``positions``."""
        s = len(self.segments)
        past = 0
        if self.cache is not None and self.cache.logical_length:
            past = self.cache.segment_length(s)
        one_d = positions.dim() == 2
        self.segments.append(
            SegmentInputs(
                positions=positions,
                layer_position_ids=positions if one_d else None,
                rotary=text_model.rotary_emb(hidden, positions),
                masks=segment_masks(text_model.config, hidden.shape[1], past, hidden.dtype, hidden.device),
            )
        )

    def enter_cached(self, index: int, text_model: nn.Module, hidden: torch.Tensor) -> None:
        """Before layer ``index`` of a later chunk: opens the cached segment that starts there."""
        if self.cache is None or index not in self.cache.splits:
            return
        s = self.cache.splits.index(index) + 1
        previous = self.nexts_before[s] if self.nexts_before is not None else None
        if previous is None:  # a cache that was never reduced: all segments alike
            positions = self.segments[-1].positions
        else:
            positions = continuation_positions(previous, hidden.shape[1])
        self.open(text_model, hidden, positions)

    def finish(self, splits: list[int] | None, *, reduced: bool, prompt_ends: bool) -> None:
        """Records the processed chunk in the cache: a reducing chunk sets the ``splits``; each
        segment's next position is ``last + 1`` of its positions; ``prompt_ends`` ends the prompt."""
        if self.cache is None:
            return
        if splits is not None and splits != self.cache.splits:
            self.cache.set_splits(splits)
        expected = self.cache.num_segments
        if len(self.segments) != expected:
            raise RuntimeError(
                f"reduction engine: {len(self.segments)} segments for a {expected}-segment cache"
            )
        if self.counts_before is None or self.counts_before[-1] is None:
            nexts = [next_position(seg.positions) for seg in self.segments]
        else:  # each segment's own count goes on by q whatever the decode rule
            nexts = [count + self.q for count in self.counts_before]
        self.cache.advance(self.q, nexts, reduced=reduced)
        if prompt_ends:
            self.cache.end_prompt(self.decode_positions)
