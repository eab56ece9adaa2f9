"""One prefill per video, reused by every question on it; greedy decoding; per-call statistics.

Because the reduction ignores the question, the KV cache of ``[system prompt + video (+ text that
depends only on the video)]`` is the same for every question on that video. ``prefill`` builds it
once (reducing at layer k); ``answer`` extends a fork of it with one question's tokens and decodes
greedily. The first-token logits equal those of a single reduced prefill of ``[prefix + question]``.

    engine = apply_reduction(model, layer=2)
    prefix = prefill(engine, prefix_inputs, reducer=SttmReducer(0.8, 0.8))   # grid from the inputs
    for question_ids in questions:
        result = answer(engine, prefix, question_ids, max_new_tokens=16, eos_token_id=eos)
        result.tokens, result.stats.to_dict()
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass

import torch

from lmms_sttm.engine.hf_compat import cache_kwargs
from lmms_sttm.engine.kv_pruning import KvPruner, KvPruning
from lmms_sttm.engine.patch import ReductionEngine
from lmms_sttm.engine.query_aware import needs_attention
from lmms_sttm.engine.reducer import Grid, Reducer
from lmms_sttm.engine.sampling import greedy
from lmms_sttm.engine.segmented_cache import SegmentedCache
from lmms_sttm.engine.stages import is_staged
from lmms_sttm.engine.timing import clock, model_devices


@dataclass(frozen=True)
class CallStats:
    """Statistics of one answered question.

    Attributes:
        visual_tokens: N, video grid tokens entering layer k (0 when nothing was reduced).
        visual_tokens_kept: N', video tokens after the reduction (after the last stage).
        prompt_tokens: logical prompt length (prefix + question).
        prompt_tokens_reduced: prompt length seen by the last segment's layers.
        reduction_s: reducer wall time (part of ``prefill_s``; 0 when the prefix was reused).
        prefill_s: time to first token: prefix prefill + question chunk, or the question chunk
            alone when the prefix was reused.
        decode_s: time spent generating tokens after the first one.
        new_tokens: generated tokens (the first one included).
        prefix_reused: whether this question reused a prefix prefilled for an earlier question.
        kv_video_kept: with decode-time KV pruning, the video entries attended in the pruned layers
            at each decode step (empty without it).
    """

    visual_tokens: int
    visual_tokens_kept: int
    prompt_tokens: int
    prompt_tokens_reduced: int
    reduction_s: float
    prefill_s: float
    decode_s: float
    new_tokens: int
    prefix_reused: bool
    kv_video_kept: tuple[int, ...] = ()

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Prefix:
    """A prefilled ``[system + video (+ video-only text)]``; ``cache`` is never extended in place.

    Attributes:
        cache: segmented KV cache of the prefix.
        last_logits: ``[1, V]`` logits after the prefix's last token.
        length / reduced_length: prefix tokens in layers < k / in the last segment.
        visual_tokens / visual_tokens_kept: N / N' (0 / 0 without a reduction).
        reduction_s / prefill_s: reducer time and prefix forward time.
        uses: questions answered on this prefix so far.
        video_span: ``(start, stop)`` of the (reduced) video entries in the last segment, if reduced.
        video_rows: ``[N']`` those entries themselves (spread over frame blocks for block layouts).
    """

    cache: SegmentedCache
    last_logits: torch.Tensor
    length: int
    reduced_length: int
    visual_tokens: int
    visual_tokens_kept: int
    reduction_s: float
    prefill_s: float
    uses: int = 0
    video_span: tuple[int, int] | None = None
    video_rows: torch.Tensor | None = None


@dataclass(frozen=True)
class Answer:
    """Greedy tokens ``[n]``, first-token logits ``[1, V]`` and the call's statistics."""

    tokens: torch.Tensor
    first_logits: torch.Tensor
    stats: CallStats


def _device(engine: ReductionEngine) -> torch.device:
    return next(engine.model.parameters()).device


@torch.no_grad()
def prefill(
    engine: ReductionEngine,
    inputs: Mapping[str, torch.Tensor],
    reducer: Reducer | None = None,
    grid: Grid | None = None,
    *,
    span_start: int | None = None,
    whole_prompt: bool = False,
    timestamps: tuple[float, ...] | None = None,
    vision_scores: torch.Tensor | None = None,
) -> Prefix:
    """Runs the model once on ``inputs`` (processor outputs, batch 1) into a new cache.

    With a ``reducer``, the video span is reduced before layer k; ``grid`` defaults to the one the
    family reads from ``inputs`` (``video_grid_thw`` / ``pixel_values_videos``). Without one, the
    prefix is prefilled unreduced (still reusable).

    The prompt's end is explicit. ``whole_prompt=False`` (default): ``inputs`` are a question-free
    prefix that ``answer`` extends with each question; a stage that reads the question (the last
    prompt token's attention) is refused with a ``ValueError``. ``whole_prompt=True``: ``inputs``
    hold the question too, the prompt ends here and ``answer`` takes an empty question.
    ``timestamps``: seconds of each grid frame, for stages that read them. ``vision_scores``: the
    vision tower's received attention ``[T, H*W]`` on the grid, given to the first stage.
    """
    if reducer is None and grid is not None:
        raise ValueError("a grid without a reducer: pass reducer=identity_reducer for an unreduced run")
    if not whole_prompt and reducer is not None and not is_staged(reducer) and needs_attention(reducer):
        raise ValueError(
            f"{reducer!r} reads the last prompt token's attention (the question): a question-free prefix "
            "cannot be reduced by it; prefill the whole prompt per question (whole_prompt=True)"
        )
    model = engine.model
    devices = model_devices(model)  # every GPU the model occupies (device_map=auto spans several)
    cache = engine.new_cache()
    engine.last_reduction = None
    began = clock(devices)
    if reducer is None:
        out = model(**inputs, **cache_kwargs(model, cache), use_cache=True, logits_to_keep=1)
    else:
        grid = engine.family.grid_from_inputs(model, inputs) if grid is None else grid
        with engine.video(
            grid,
            reducer,
            span_start=span_start,
            prompt_ends=whole_prompt,
            timestamps=timestamps,
            vision_scores=vision_scores,
        ):
            out = model(**inputs, **cache_kwargs(model, cache), use_cache=True, logits_to_keep=1)
    seconds = clock(devices) - began
    record = engine.last_reduction if reducer is not None else None
    return Prefix(
        cache=cache,
        last_logits=out.logits[:, -1],
        length=cache.logical_length,
        reduced_length=cache.segment_length(-1),
        visual_tokens=record.visual_tokens if record else 0,
        visual_tokens_kept=record.visual_tokens_kept if record else 0,
        reduction_s=record.seconds if record else 0.0,
        prefill_s=seconds,
        video_span=(record.span_start, record.span_start + record.visual_tokens_kept) if record else None,
        video_rows=record.video_rows if record else None,
    )


def never_placeholder(
    pick: Callable[[torch.Tensor], torch.Tensor], video_token_id: int | None
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``pick`` on logits ``[1, V]`` whose video placeholder entry is ``-inf``: the placeholder marks
    where video features go in a prompt and cannot be fed back as a decode input (the engine
    refuses video tokens after the first chunk). A checkpoint that ranks it first (the model
    organism under heavy reduction did) gets its next choice instead of a failed run; every
    other answer is unchanged."""
    if video_token_id is None:
        return pick

    def masked(logits: torch.Tensor) -> torch.Tensor:
        if video_token_id < logits.shape[-1]:
            logits = logits.clone()
            logits[..., video_token_id] = float("-inf")
        return pick(logits)

    return masked


@torch.no_grad()
def answer(
    engine: ReductionEngine,
    prefix: Prefix,
    question_ids: torch.Tensor,
    *,
    max_new_tokens: int,
    eos_token_id: int | Iterable[int] | None = None,
    pick: Callable[[torch.Tensor], torch.Tensor] | None = None,
    kv_pruning: KvPruning | None = None,
) -> Answer:
    """Extends a fork of ``prefix.cache`` with ``question_ids`` (``[1, q]`` or ``[q]``, text only) and decodes.

    ``pick`` chooses each next token from the logits ``[1, V] -> [1, 1]`` (default: greedy argmax;
    see :func:`lmms_sttm.engine.sampling.sampler`), never the video placeholder
    (:func:`never_placeholder`). Stops after ``max_new_tokens`` or after emitting
    an ``eos_token_id`` (kept in ``tokens``). ``kv_pruning``: DyCoke stage 2 on every decode step
    after the first token (``engine/kv_pruning.py``); needs a reduced prefix.
    """
    pick = never_placeholder(pick or greedy, engine.video_token_id)
    if max_new_tokens < 1:
        raise ValueError("max_new_tokens must be >= 1")
    model, device = engine.model, _device(engine)
    eos = {eos_token_id} if isinstance(eos_token_id, int) else set(eos_token_id or ())
    question_ids = question_ids.reshape(1, -1).to(device)
    devices = model_devices(model)
    cache = prefix.cache.fork()

    began = clock(devices)
    if question_ids.shape[1] > 0:
        logits = model(
            input_ids=question_ids, **cache_kwargs(model, cache), use_cache=True, logits_to_keep=1
        ).logits[:, -1]
    else:
        logits = prefix.last_logits
    first_logits = logits
    token = pick(logits)
    first_token_at = clock(devices)
    prompt_tokens, prompt_reduced = cache.logical_length, cache.segment_length(-1)
    cache.end_prompt(engine.decode_positions)  # generated tokens: engine.decode_positions

    tokens = [token]
    pruner = None
    if kv_pruning is not None:
        if prefix.video_span is None:
            raise ValueError("KV pruning needs a reduced prefix (its video span)")
        pruner = KvPruner(
            engine, kv_pruning, prefix.video_span, prefix.visual_tokens, cache.splits[-1], prefix.video_rows
        )
    try:
        while len(tokens) < max_new_tokens and int(token) not in eos:
            logits = model(input_ids=token, **cache_kwargs(model, cache), use_cache=True).logits[:, -1]
            token = pick(logits)
            tokens.append(token)
    finally:
        if pruner is not None:
            pruner.remove()
    finished = clock(devices)

    reused = prefix.uses > 0
    prefix.uses += 1
    question_s = first_token_at - began
    stats = CallStats(
        visual_tokens=prefix.visual_tokens,
        visual_tokens_kept=prefix.visual_tokens_kept,
        prompt_tokens=prompt_tokens,
        prompt_tokens_reduced=prompt_reduced,
        reduction_s=0.0 if reused else prefix.reduction_s,
        prefill_s=question_s if reused else prefix.prefill_s + question_s,
        decode_s=finished - first_token_at,
        new_tokens=len(tokens),
        prefix_reused=reused,
        kv_video_kept=tuple(pruner.kept_per_step) if pruner is not None else (),
    )
    return Answer(torch.cat(tokens, dim=1)[0], first_logits, stats)


def generate(
    engine: ReductionEngine,
    inputs: Mapping[str, torch.Tensor],
    reducer: Reducer | None = None,
    grid: Grid | None = None,
    *,
    max_new_tokens: int,
    eos_token_id: int | Iterable[int] | None = None,
    span_start: int | None = None,
    pick: Callable[[torch.Tensor], torch.Tensor] | None = None,
    kv_pruning: KvPruning | None = None,
    timestamps: tuple[float, ...] | None = None,
    vision_scores: torch.Tensor | None = None,
) -> Answer:
    """One question, no reuse: prefill the whole prompt (reducing at layer k) and decode."""
    prefix = prefill(
        engine,
        inputs,
        reducer,
        grid,
        span_start=span_start,
        whole_prompt=True,
        timestamps=timestamps,
        vision_scores=vision_scores,
    )
    empty = torch.zeros(1, 0, dtype=torch.long)
    return answer(
        engine,
        prefix,
        empty,
        max_new_tokens=max_new_tokens,
        eos_token_id=eos_token_id,
        pick=pick,
        kv_pruning=kv_pruning,
    )
