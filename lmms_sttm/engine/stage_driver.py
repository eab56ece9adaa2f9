"""The stage driver of one reducing forward: runs a method's stages as the decoder layers go by.

A method is a sequence of stages (``stages.py``): each reduces the current video tokens entering
a layer (``point="input"``) or inside it after its attention (``point="attention"``), and opens a
segment in the ``SegmentBook`` (``segments.py``) with the stage's positions. The driver locates the
video span, computes the attention scores a stage reads (timed with the stage: both are merge
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
from lmms_sttm.engine.positions import reduced_positions
from lmms_sttm.engine.query_aware import AttentionContext
from lmms_sttm.engine.reducer import check_reduction
from lmms_sttm.engine.segments import SegmentBook
from lmms_sttm.engine.stages import Stage, StageRun, compose
from lmms_sttm.engine.timing import synchronize
from lmms_sttm.engine.video import ReductionRecord, VideoSpec
from lmms_sttm.merging.reduction import Reduction


class StageDriver:
    """Runs ``run``'s stages on the video of one forward.

    Attributes:
        video: the video context; ``run``: its stages; ``span_start``: first video token in the chunk.
        splits: the layers where this forward opened segments.
        record: the composed reduction so far (None before the first stage).
        record_plan: the last stage's own plan (over the tokens it saw).
        scores: the pending stage's attention scores, computed at the layer before it.
        mid: ``(layer, rows [q'], positions)`` of an attention-point stage that ran inside
            ``layer``; the next layer gathers ``rows`` and opens the segment with ``positions``.
    """

    def __init__(
        self,
        video: VideoSpec,
        run: StageRun,
        span_start: int,
        num_layers: int,
        mode: str,
        devices: tuple[torch.device, ...] = (),
    ) -> None:
        self.video, self.run, self.span_start = video, run, span_start
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
        return self.video.num_tokens if self.record is None else self.record.visual_tokens_kept

    def pending_stage(self) -> Stage | None:
        return self.run.next_stage()

    def enter_layer(
        self, index: int, text_model: nn.Module, hidden: torch.Tensor, book: SegmentBook
    ) -> torch.Tensor:
        """Before decoder layer ``index``: opens the segment of an attention-point stage that ran in
        the previous layer, then runs an input stage due here. ``[1, q_s, C] -> [1, q_s', C]``."""
        if self.mid is not None:
            _, rows, positions = self.mid
            self.mid = None
            hidden = hidden.index_select(1, rows)
            book.open(text_model, hidden, positions)
        stage = self.pending_stage()
        if stage is not None and stage.layer < index:
            raise RuntimeError(f"stage at layer {stage.layer} requested after layer {index} ran")
        if stage is not None and stage.layer == index and stage.point == "input":
            hidden, positions = self._run_stage(stage, hidden, book)
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
        start = self.span_start
        hidden, rotary = on_layer_device(layer, hidden, rotary)  # before accelerate moves them
        synchronize(self.devices or (hidden.device,))
        began = time.perf_counter()
        self.scores = last_token_attention(layer, hidden, rotary, (start, start + self.span_length))
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
        start, n = self.span_start, self.span_length
        q = residual.shape[1]
        reduced, positions = self._run_stage(stage, residual, book)
        plan = self.record_plan
        device = residual.device
        rows = torch.cat(
            [
                torch.arange(start, device=device),
                start + plan.rep_index.to(device),
                torch.arange(start + n, q, device=device),
            ]
        )
        residual[:, rows] = reduced  # in place: the layer's residual is this tensor
        self.mid = (index, rows, positions)
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
        """Runs ``stage`` on the current span: ``(reduced hidden [1, q', C], its positions)``."""
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
        )
        self.scores = None
        grid = self.video.grid if self.record is None else (1, 1, self.span_length)
        hidden, plan, seconds = reduce_span(
            hidden, self.span_start, self.span_length, grid, self.run, context, self.devices
        )
        # the video is in the first chunk on an empty cache: renumbering starts at 0
        positions = reduced_positions(rule, book.current_positions, self.span_start, plan, None)
        original = compose(None if self.record is None else self.record.plan, plan)
        self._seconds += seconds
        self.record = ReductionRecord(
            self.video.num_tokens, plan.num_kept, self._seconds, self.span_start, original
        )
        self.record_plan = plan
        self.splits.append(stage.split)
        return hidden, positions


def reduce_span(
    hidden: torch.Tensor,
    start: int,
    n: int,
    grid,
    run: StageRun,
    context: AttentionContext,
    devices: tuple[torch.device, ...] = (),
):
    """Runs one stage on ``hidden[0, start:start+n]`` and splices its features in.

    Returns ``(hidden [1, q - n + n', C], plan, seconds)``; the plan's rows enter in its order.
    ``devices``: the GPUs synchronised around the timed stage (default: ``hidden``'s).
    """
    devices = devices or (hidden.device,)
    stop = start + n
    span = hidden[0, start:stop]
    synchronize(devices)
    began = time.perf_counter()
    with torch.no_grad():
        plan = run.run(span, grid, context)
    check_reduction(plan, span, grid)
    features = plan.features.to(device=hidden.device, dtype=hidden.dtype)
    reduced = torch.cat([hidden[:, :start], features[None], hidden[:, stop:]], dim=1)
    synchronize(devices)
    return reduced, plan, time.perf_counter() - began
