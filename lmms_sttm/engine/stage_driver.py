"""The stage driver of one reducing forward: runs a method's stages as the decoder layers go by.

A method is a sequence of stages (``stages.py``): each reduces the current video tokens entering
a layer (``point="input"``) or inside it after its attention (``point="attention"``), and opens a
segment in the ``SegmentBook`` (``segments.py``) with the stage's positions. The video tokens are
``VideoRows`` (``span.py``): one run, or one run per frame block with text between the blocks;
``splice.py`` puts each block's kept tokens back in place. Tensors the tokens carry through the
merge (DeepStack features, ``side``) follow every plan (``Reduction.carry``) and are added to the
current video rows after their layers (``add_side``). The driver computes the attention scores a stage reads (timed with the stage: both are merge
time), refuses what cannot be run before it runs (a stage at a layer already passed, two stages
opening a segment at one layer, a stage reading the question in a prefix prefill, renumbered
positions on an M-RoPE family), and composes the plans into one map over the original tokens.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from lmms_sttm.engine.attention_scores import last_token_attention
from lmms_sttm.engine.placement import on_layer_device
from lmms_sttm.engine.query_aware import AttentionContext
from lmms_sttm.engine.reducer import check_reduction
from lmms_sttm.engine.segments import SegmentBook
from lmms_sttm.engine.span import VideoRows
from lmms_sttm.engine.splice import in_sequence_order, splice, spliced_positions
from lmms_sttm.engine.stages import Stage, StageRun, compose
from lmms_sttm.engine.timing import synchronize
from lmms_sttm.engine.video import ReductionRecord, VideoSpec
from lmms_sttm.merging.reduction import Reduction


class StageDriver:
    """Runs ``run``'s stages on the video of one forward.

    Attributes:
        video: the video context; ``run``: its stages; ``rows``: the current video tokens.
        splits: the layers where this forward opened segments.
        record: the composed reduction so far (None before the first stage).
        record_plan: the last stage's own plan (over the tokens it saw).
        scores: the pending stage's attention scores, computed at the layer before it.
        mid: ``(layer, rows [q'], positions, kept rows)`` of an attention-point stage that ran
            inside ``layer``; the next layer gathers ``rows`` and opens the segment with
            ``positions``; until then the kept tokens sit at ``kept rows`` of the full chunk.
        side: per layer ``i``, the ``[n, C]`` tensor added to the video tokens after layer ``i``
            (DeepStack), carried through every plan; None where none is (left).
    """

    def __init__(
        self,
        video: VideoSpec,
        run: StageRun,
        rows: VideoRows,
        num_layers: int,
        mode: str,
        devices: tuple[torch.device, ...] = (),
    ) -> None:
        self.video, self.run, self.rows = video, run, rows
        self.span_start = rows.start
        self.side: list[torch.Tensor | None] = []
        self.num_layers, self.mode, self.devices = num_layers, mode, devices
        self.splits: list[int] = []
        self.record: ReductionRecord | None = None
        self.record_plan: Reduction | None = None
        self.scores: torch.Tensor | None = None
        self.mid: tuple | None = None
        self._seconds = 0.0  # stages and their attention scores

    @property
    def span_length(self) -> int:
        """Video tokens in the current segment's chunk."""
        return len(self.rows)

    def add_side(self, index: int, hidden: torch.Tensor) -> torch.Tensor | None:
        """After decoder layer ``index``: ``hidden [1, q_s, C]`` plus that layer's side tensor at the
        current video rows (as the decoder adds DeepStack features: clone, then add in its dtype),
        or None when the layer has none."""
        if index >= len(self.side) or self.side[index] is None:
            return None
        rows = self.rows.rows if self.mid is None or self.mid[0] != index else self.mid[3]
        rows = rows.to(hidden.device)
        out = hidden.clone()
        out[0, rows] = out[0, rows] + self.side[index].to(hidden.device, hidden.dtype)
        return out

    def pending_stage(self) -> Stage | None:
        return self.run.next_stage()

    def enter_layer(
        self, index: int, text_model: nn.Module, hidden: torch.Tensor, book: SegmentBook
    ) -> torch.Tensor:
        """Before decoder layer ``index``: opens the segment of an attention-point stage that ran in
        the previous layer, then runs an input stage due here. ``[1, q_s, C] -> [1, q_s', C]``."""
        if self.mid is not None:
            _, rows, positions, _ = self.mid
            self.mid = None
            hidden = hidden.index_select(1, rows)
            book.open(text_model, hidden, positions)
        stage = self.pending_stage()
        if stage is not None and stage.layer < index:
            raise RuntimeError(f"stage at layer {stage.layer} requested after layer {index} ran")
        if stage is not None and stage.layer == index and stage.point == "input":
            hidden, positions, _ = self._run_stage(stage, hidden, book)
            book.open(text_model, hidden, positions)
        return hidden

    def bind_scores(self, index: int, layer: nn.Module, hidden: torch.Tensor, rotary) -> None:
        """At layer ``index``: if the next stage splits at ``index + 1`` and reads attention, the last
        prompt token's attention over the current video span from this layer's projections."""
        stage = self.pending_stage()
        if stage is None or stage.split != index + 1 or not stage.needs_attention:
            return
        self._refuse_question(stage)
        if rotary is None:
            raise ValueError(f"query-aware stage: layer {index} received no position_embeddings")
        hidden, rotary = on_layer_device(layer, hidden, rotary)  # before accelerate moves them
        synchronize(self.devices or (hidden.device,))
        began = time.perf_counter()
        self.scores = last_token_attention(layer, hidden, rotary, self.rows.rows)
        synchronize(self.devices or (hidden.device,))
        self._seconds += time.perf_counter() - began

    def after_attention(self, index: int, residual: torch.Tensor, book: SegmentBook) -> torch.Tensor | None:
        """Inside layer ``index``, before its MLP: runs an attention-point stage due there.

        ``residual [1, q_s, C]`` (the post-attention states, which the layer also keeps as its
        residual: the identity tests in ``tests/engine`` hold this per family) gets the reduced
        tokens written in place at their rows (pre text, the kept tokens' representatives, post
        text); returns the reduced ``[1, q', C]`` for the MLP, whose output ``scatter_mlp`` puts
        back at those rows. The next layer gathers the rows.
        """
        stage = self.pending_stage()
        if stage is None or stage.point != "attention" or stage.layer != index:
            return None
        if index + 1 >= self.num_layers:
            raise RuntimeError(f"an attention-point stage needs a layer after it, got layer {index}")
        before = self.rows.rows.to(residual.device)
        reduced, positions, spliced = self._run_stage(stage, residual, book)
        plan = self.record_plan
        kept_rows = before.index_select(0, plan.rep_index.to(residual.device))
        rows = spliced.gather(spliced.text_rows.to(residual.device), kept_rows, dim=0)
        residual[:, rows] = reduced  # in place: the layer's residual is this tensor
        self.mid = (index, rows, positions, kept_rows)
        return reduced

    def scatter_mlp(self, index: int, out: torch.Tensor, full: int) -> torch.Tensor | None:
        """The MLP output ``[1, q', C]`` of an attention-point stage's layer, at the kept rows of a
        zero ``[1, full, C]`` (the layer adds it to the residual: exact at the kept rows)."""
        if self.mid is None or self.mid[0] != index:
            return None
        rows = self.mid[1]
        scattered = out.new_zeros(out.shape[0], full, out.shape[2])
        scattered[:, rows] = out
        return scattered

    def check_done(self) -> None:
        """Raises unless every stage ran (called when the forward ends)."""
        if self.record is None:
            raise RuntimeError("reduction engine: the forward ended before its first stage ran")
        if self.run.next_stage() is not None:
            raise RuntimeError("reduction engine: the forward ended with stages still pending")

    # ----------------------------------------------------------------- one stage
    def _refuse_question(self, stage: Stage) -> None:
        if stage.needs_attention and not self.video.prompt_ends:
            raise ValueError(
                f"a stage at layer {stage.layer} reads the last prompt token's attention (the question), but "
                "this is a prefix prefill without the question: prefill the whole prompt per question "
                "(the method is not query-agnostic)"
            )

    def _position_rule(self, stage: Stage) -> str:
        rule = stage.position_rule or ("renumber" if self.mode == "reassign" else "original")
        if self.mode == "survive" and rule == "renumber":
            raise ValueError(
                f"stage at layer {stage.layer} asks for renumbered positions on an M-RoPE family, whose "
                "position ids cannot be renumbered; use position_rule 'original' (or None)"
            )
        return rule

    def _run_stage(self, stage: Stage, hidden: torch.Tensor, book: SegmentBook):
        """Runs ``stage`` on the current video tokens: ``(reduced hidden [1, q', C], its positions,
        the splice)``; carries the side tensors of layers ``>= stage.layer`` through the plan."""
        if stage.split in self.splits or (self.splits and stage.split < self.splits[-1]):
            raise RuntimeError(
                f"two stages open a segment at layer {stage.split} (splits so far {self.splits}); "
                "a method's stages must split at increasing layers"
            )
        self._refuse_question(stage)
        rule = self._position_rule(stage)
        if stage.needs_attention and self.scores is None:
            raise RuntimeError(
                f"stage at layer {stage.layer} needs attention scores of layer {stage.split - 1}"
            )
        context = AttentionContext(
            self.scores,
            stage.layer,
            self.num_layers,
            tokens=None if self.record is None else self.record.plan,
            timestamps=self.video.timestamps,
            vision_scores=self.video.vision_scores if self.record is None else None,
        )
        self.scores = None
        grid = self.video.grid if self.record is None else (1, 1, self.span_length)
        video = self.rows.to(hidden.device)
        hidden, plan, spliced, seconds = reduce_span(hidden, video, grid, self.run, context, self.devices)
        # the video is in the first chunk on an empty cache: renumbering starts at 0
        positions = spliced_positions(rule, book.current_positions, video, plan, spliced)
        began = time.perf_counter()
        self.side = [
            None if s is None or i < stage.layer else plan.carried(s) for i, s in enumerate(self.side)
        ]
        seconds += time.perf_counter() - began
        original = compose(None if self.record is None else self.record.plan, plan)
        self._seconds += seconds
        self.rows = spliced.video
        self.record = ReductionRecord(
            self.video.num_tokens, plan.num_kept, self._seconds, self.span_start, original, spliced.video.rows
        )
        self.record_plan = plan
        self.splits.append(stage.split)
        return hidden, positions, spliced


def reduce_span(
    hidden: torch.Tensor,
    video: VideoRows,
    grid,
    run: StageRun,
    context: AttentionContext,
    devices: tuple[torch.device, ...] = (),
):
    """Runs one stage on ``hidden[0, video.rows]`` and splices its kept tokens back, block by block.

    Returns ``(hidden [1, q', C], plan in sequence order, Spliced, seconds)``.
    ``devices``: the GPUs synchronised around the timed stage (default: ``hidden``'s).
    """
    devices = devices or (hidden.device,)
    start, n = video.start, len(video)
    if int(video.rows[-1]) - start == n - 1 and bool((video.rows[1:] > video.rows[:-1]).all()):
        span = hidden[0, start : start + n]  # one run: the chunk's own memory, as the reducer always saw it
    else:
        span = hidden[0].index_select(0, video.rows)
    synchronize(devices)
    began = time.perf_counter()
    with torch.no_grad():
        plan = run.run(span, grid, context)
    check_reduction(plan, span, grid)
    plan = in_sequence_order(plan, video.blocks)
    spliced = splice(hidden.shape[1], video, plan)
    features = plan.features.to(device=hidden.device, dtype=hidden.dtype)
    text = hidden[0].index_select(0, spliced.text_rows)
    reduced = spliced.gather(text, features, dim=0)[None]
    synchronize(devices)
    return reduced, plan, spliced, time.perf_counter() - began
