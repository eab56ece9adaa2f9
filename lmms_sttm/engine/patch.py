"""Apply and remove a token reduction on one model instance, dispatched by ``config.model_type``.

``apply_reduction(model, layer=k)`` registers forward pre-hooks (with kwargs) on the instance's
text decoder and on every decoder layer; no transformers class is touched, a second model in the
process is unaffected, and ``engine.remove()`` leaves no trace.

A forward through the text decoder is *active* when a video context is set
(``with engine.video(grid, method): ...``) or when its cache is a ``SegmentedCache``; other
forwards run exactly as unpatched. In an active forward (batch 1, no padding):

- segment 0 (layers below the first stage) sees the chunk at full length: the engine passes its
  own position ids and a per-segment causal mask dict to the decoder, which computes rotary;
- a method is a sequence of stages (``stages.py``; a plain reducer is one stage at layer k). In
  the chunk that holds the video (the first chunk on an empty cache), before each stage's layer
  the current video tokens go through the stage and are replaced by its ``features``, in the
  plan's row order; query-aware stages get the last token's attention at the layer before;
- each stage opens a segment with its own positions (the method's rule, ``positions.py``),
  rotary recomputed by the decoder's ``rotary_emb``, and its own causal mask sized by its own cache
  length; later chunks (question, decoding) open the same segments at the cache's split layers.
- hybrid decoders (Qwen3.5): Gated DeltaNet layers run in their segment like any layer (on the
  sequence that segment sees, in order) with no mask; stages reading attention are placed on
  full-attention layers (``hybrid.py``); the cache snapshots their states (``segmented_cache.py``).

Decoding (``decode_positions``): ``"authors"`` (default) continues generated token ``i`` at
``N + i`` in every layer (``N`` the unreduced prompt length), as the STTM authors' ``generate``
with its full-length attention mask; ``"compact"`` continues each segment from its own length
(``N' + i`` in renumbered segments). M-RoPE and original-id segments continue from ``last + 1``
either way, as in ``generate``.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from transformers.cache_utils import DynamicCache

from lmms_sttm.engine import hf_compat
from lmms_sttm.engine.families import Family, family_of
from lmms_sttm.engine.masks import check_attention, segment_masks
from lmms_sttm.engine.query_aware import needs_attention
from lmms_sttm.engine.reducer import Grid, Reducer
from lmms_sttm.engine.segmented_cache import DECODE_POSITIONS, SegmentedCache
from lmms_sttm.engine.segments import SegmentBook
from lmms_sttm.engine.span import VideoRows, has_video_tokens, locate_video
from lmms_sttm.engine.stage_driver import StageDriver
from lmms_sttm.engine.stages import is_staged, start_run
from lmms_sttm.engine.timing import model_devices
from lmms_sttm.engine.video import ReductionRecord, VideoSpec

# Engines alive, by id of the patched text decoder (no attribute is ever set on the model).
_ENGINES: weakref.WeakValueDictionary[int, ReductionEngine] = weakref.WeakValueDictionary()


class ReductionEngine:
    """Hooks on one model instance that run a method's stages on the video span.

    Create with ``apply_reduction``. Attributes: ``model``, ``family``, ``layer`` (k, where a
    one-stage reducer runs), ``text_model``, ``video_token_id``, ``decode_positions``,
    ``last_reduction`` (``ReductionRecord`` of the last reducing forward, or None).
    """

    def __init__(
        self,
        model: nn.Module,
        family: Family,
        layer: int,
        video_token_id: int | None,
        decode_positions: str = "authors",
    ) -> None:
        if decode_positions not in DECODE_POSITIONS:
            raise ValueError(f"decode_positions={decode_positions!r}; use one of {list(DECODE_POSITIONS)}")
        self.decode_positions = decode_positions
        self.model = model
        self.family = family
        self.text_model = family.text_model(model)
        num_layers = len(self.text_model.layers)
        if not 0 <= layer < num_layers:
            raise ValueError(f"reduction layer {layer} outside [0, {num_layers - 1}]")
        check_attention(self.text_model.config)
        self.layer = layer
        self.video_token_id = video_token_id
        self.last_reduction: ReductionRecord | None = None
        self._video: VideoSpec | None = None
        self._book: SegmentBook | None = None  # the active forward's segments
        self._driver: StageDriver | None = None  # its stages, in the chunk that holds the video
        self._pending_ids: torch.Tensor | None = None
        self._param_names = list(inspect.signature(self.text_model.forward).parameters)
        self._layer_types = list(
            getattr(self.text_model.config, "layer_types", None) or ["full_attention"] * num_layers
        )
        self._handles: list = []
        self._hooked_from = len(self.text_model.layers)  # decoder layers >= this carry a pre-hook
        self._mid_handles: list = []  # attention-point hooks, only during a reducing forward
        self._register()

    # ----------------------------------------------------------------- public API
    @contextmanager
    def video(
        self,
        grid: Grid,
        reducer: Reducer,
        span_start: int | None = None,
        *,
        prompt_ends: bool = True,
        timestamps: tuple[float, ...] | None = None,
        vision_scores: torch.Tensor | None = None,
    ) -> Iterator[ReductionEngine]:
        """Within the block, the first forward on an empty cache reduces this video's span.

        ``reducer``: a one-stage reducer or a staged method. ``prompt_ends=False`` when that forward
        is only a prefix (the caller then ends the prompt with ``cache.end_prompt``).
        ``timestamps`` / ``vision_scores``: per grid frame, given to the stages (``VideoSpec``).
        """
        self._require_live()
        if self._video is not None:
            raise RuntimeError("a video context is already active on this engine")
        if not is_staged(reducer) and needs_attention(reducer) and self.layer < 1:
            raise ValueError(
                f"{reducer!r} reads layer k-1's attention and needs a reduction layer k >= 1, got {self.layer}"
            )
        self._video = VideoSpec(tuple(grid), reducer, span_start, prompt_ends, timestamps, vision_scores)
        try:
            yield self
        finally:
            self._video = None

    def new_cache(self) -> SegmentedCache:
        """An empty cache split at this engine's layer."""
        return SegmentedCache(self.text_model.config, self.layer)

    @property
    def removed(self) -> bool:
        return not self._handles

    def remove(self) -> None:
        """Removes every hook; the model is then exactly as before ``apply_reduction``."""
        for handle in self._handles + self._mid_handles:
            handle.remove()
        self._handles, self._mid_handles = [], []
        self._book = self._driver = self._pending_ids = self._video = None
        if _ENGINES.get(id(self.text_model)) is self:
            del _ENGINES[id(self.text_model)]

    # ----------------------------------------------------------------- hooks
    def _register(self) -> None:
        text = self.text_model
        ids_module = self.family.ids_module(self.model)
        if ids_module is not text:
            self._handles.append(ids_module.register_forward_pre_hook(self._capture_ids, with_kwargs=True))
            self._handles.append(ids_module.register_forward_hook(self._clear_ids, always_call=True))
        self._handles.append(text.register_forward_pre_hook(self._before_text_model, with_kwargs=True))
        self._handles.append(
            text.register_forward_hook(self._after_text_model, with_kwargs=True, always_call=True)
        )
        # one-stage reducers act at k and read layer k-1's attention; staged methods hook more
        self._hook_layers_from(max(0, self.layer - 1))

    def _hook_layers_from(self, first: int) -> None:
        """Pre-hooks on decoder layers ``first..`` (kept until ``remove``; a hook outside a
        segment's start returns at once)."""
        for index in range(first, self._hooked_from):
            hook = self._make_layer_hook(index)
            self._handles.append(
                self.text_model.layers[index].register_forward_pre_hook(hook, with_kwargs=True)
            )
        self._hooked_from = min(self._hooked_from, first)

    def _hook_attention_points(self) -> None:
        """Hooks for attention-point stages (post-attention norm, MLP) on every layer, for one forward."""
        for index, layer in enumerate(self.text_model.layers):
            mid, scatter = self._make_mid_hooks(index)
            self._mid_handles.append(layer.post_attention_layernorm.register_forward_pre_hook(mid))
            self._mid_handles.append(layer.mlp.register_forward_hook(scatter))

    def _unhook_attention_points(self) -> None:
        for handle in self._mid_handles:
            handle.remove()
        self._mid_handles = []

    def _capture_ids(self, module, args, kwargs):
        self._pending_ids = kwargs.get("input_ids", args[0] if args else None)

    def _clear_ids(self, module, args, output):
        self._pending_ids = None

    def _before_text_model(self, module, args, kwargs):
        kwargs = dict(kwargs)
        for name, value in zip(self._param_names, args, strict=False):
            kwargs[name] = value
        input_ids = kwargs.get("input_ids")
        if input_ids is None:
            input_ids = self._pending_ids
        self._pending_ids = None
        self._book = self._driver = None
        cache = hf_compat.read_cache(kwargs)
        video = self._video
        if video is None and not isinstance(cache, SegmentedCache):
            return None
        check_attention(module.config)
        embeds = kwargs.get("inputs_embeds")
        if embeds is None:
            if input_ids is None:
                raise ValueError("reduction engine: the decoder got neither input_ids nor inputs_embeds")
            embeds = module.embed_tokens(input_ids)
            kwargs["inputs_embeds"], kwargs["input_ids"] = embeds, None
        if embeds.shape[0] != 1:
            raise ValueError(f"reduction engine runs batch size 1 only, got a batch of {embeds.shape[0]}")
        self._check_no_padding(kwargs.get("attention_mask"))
        use_cache = kwargs.get("use_cache")
        use_cache = module.config.use_cache if use_cache is None else use_cache
        cache = self._segmented(cache, bool(use_cache))
        hf_compat.write_cache(module, kwargs, cache)
        if cache is not None and cache.splits[0] < self._hooked_from:
            self._hook_layers_from(cache.splits[0])

        q, device = embeds.shape[1], embeds.device
        mode = self.family.position_mode
        book = SegmentBook.start(mode, cache, q, kwargs.get("position_ids"), device, self.decode_positions)
        driver = None
        if cache is None or cache.logical_length == 0:
            if video is not None:
                run = start_run(video.reducer, video.grid, len(module.layers), self.layer, self._layer_types)
                rows = self._locate_video(input_ids, video, q)
                # every GPU the timed stages must wait for
                driver = StageDriver(video, run, rows, len(module.layers), mode, model_devices(module))
                if is_staged(video.reducer):  # its stages may sit at any layer, inside layers too
                    self._hook_layers_from(0)
                    self._hook_attention_points()
                if self.family.deepstack:
                    self._take_deepstack(kwargs, driver)
        elif has_video_tokens(input_ids, self.video_token_id):
            raise ValueError(
                "reduction engine: video tokens are only supported in the first chunk on a cache"
            )
        past = cache.logical_length if cache is not None else 0
        kwargs["position_ids"] = book.full_positions
        masks = segment_masks(module.config, q, past, embeds.dtype, device, skip=self.family.mask_dict)
        kwargs["attention_mask"] = masks if self.family.mask_dict else masks["full_attention"]
        self._book, self._driver = book, driver
        return (), kwargs

    def _make_layer_hook(self, index: int):
        def hook(module, args, kwargs):
            book, driver = self._book, self._driver
            if book is None:
                return None
            hf_compat.check_layer_cache(module, kwargs, book.cache)
            kwargs = dict(kwargs)
            if args:
                hidden, rest = args[0], args[1:]
            else:
                hidden, rest = kwargs.pop("hidden_states"), ()
            if driver is not None:
                before = driver.record
                hidden = driver.enter_layer(index, self.text_model, hidden, book)
                if driver.record is not before:
                    self.last_reduction = driver.record
            else:
                book.enter_cached(index, self.text_model, hidden)
            segment = book.segment_kwargs()
            if segment is not None:
                kwargs["attention_mask"] = segment.masks[self._layer_types[index]]
                kwargs["position_embeddings"] = segment.rotary
                kwargs["position_ids"] = segment.layer_position_ids
            if driver is not None:
                driver.bind_scores(index, module, hidden, kwargs.get("position_embeddings"))
            return (hidden, *rest), kwargs

        return hook

    def _take_deepstack(self, kwargs: dict, driver: StageDriver) -> None:
        """DeepStack in a reducing forward: the engine adds the features itself after their layers,
        at the current video rows, carried through every plan (``StageDriver.add_side``)."""
        embeds = kwargs.pop("deepstack_visual_embeds", None)
        mask = kwargs.pop("visual_pos_masks", None)
        kwargs["deepstack_visual_embeds"] = kwargs["visual_pos_masks"] = None
        if embeds is None:
            return
        rows = mask[0].nonzero().flatten().to(driver.rows.rows.device) if mask is not None else None
        if rows is None or not torch.equal(rows, driver.rows.rows):
            raise ValueError(
                "reduction engine: DeepStack's visual positions are not exactly the video's tokens "
                "(images next to the video are not supported)"
            )
        driver.side = list(embeds)
        for index in range(min(len(embeds), len(self.text_model.layers))):
            layer = self.text_model.layers[index]
            self._mid_handles.append(layer.register_forward_hook(self._make_side_hook(index)))

    def _make_side_hook(self, index: int):
        def hook(module, args, output):
            driver = self._driver
            if driver is None:
                return None
            hidden = output[0] if isinstance(output, tuple) else output
            added = driver.add_side(index, hidden)
            if added is None:
                return None
            return (added, *output[1:]) if isinstance(output, tuple) else added

        return hook

    def _make_mid_hooks(self, index: int):
        full = {}

        def mid(module, args):
            driver = self._driver
            if driver is None:
                return None
            reduced = driver.after_attention(index, args[0], self._book)
            if reduced is None:
                return None
            full[index] = args[0].shape[1]
            if driver.record is not None:
                self.last_reduction = driver.record
            return (reduced,)

        def scatter(module, args, output):
            driver = self._driver
            if driver is None or index not in full:
                return None
            return driver.scatter_mlp(index, output, full.pop(index))

        return mid, scatter

    def _after_text_model(self, module, args, kwargs, output):
        self._unhook_attention_points()
        book, driver = self._book, self._driver
        self._book = self._driver = None
        if book is None:
            return None
        if output is None:  # the forward raised: some layers may already hold this chunk
            if book.cache is not None:
                book.cache.failed = True
            return None
        hf_compat.check_cache_written(book.cache)
        if driver is not None:
            driver.check_done()
            book.finish(driver.splits, reduced=True, prompt_ends=driver.video.prompt_ends)
        else:  # a chunk right after a question-free prefix completes the prompt (the question)
            cache = book.cache
            follows_prefix = cache is not None and 0 < cache.frozen_length == cache.logical_length
            book.finish(None, reduced=False, prompt_ends=follows_prefix)
        return None

    # ----------------------------------------------------------------- helpers
    def _locate_video(self, input_ids, video: VideoSpec, q: int) -> VideoRows:
        rows = locate_video(
            input_ids,
            self.video_token_id,
            video.grid,
            blocks=self.family.blocks,
            extra_allowed=self.family.extra_video_tokens,
            span_start=video.span_start,
        )
        if rows is None:
            raise ValueError(
                "reduction engine: a video context is set but the first chunk has no video tokens"
            )
        if int(rows.rows.max()) >= q:
            raise ValueError(
                f"video span [{rows.start}, +{video.num_tokens}) exceeds the chunk of {q} tokens"
            )
        return rows

    def _segmented(self, cache, use_cache: bool) -> SegmentedCache | None:
        if isinstance(cache, SegmentedCache):
            if cache.failed:
                raise ValueError("reduction engine: this cache is inconsistent after a failed forward")
            return cache
        if cache is None:
            return self.new_cache() if use_cache else None
        if type(cache) is DynamicCache and cache.get_seq_length() == 0:
            # generate() built an empty DynamicCache; it takes the returned cache for later steps.
            return self.new_cache()
        raise TypeError(
            f"reduction engine needs a SegmentedCache (engine.new_cache()), got a non-empty {type(cache).__name__}"
        )

    @staticmethod
    def _check_no_padding(mask) -> None:
        if mask is None:
            return
        if isinstance(mask, dict) or mask.dim() != 2:
            raise ValueError(
                "reduction engine builds its own masks; pass a 2-D attention_mask of ones or None"
            )
        if not bool(mask.all()):
            raise ValueError("reduction engine runs padding-free; the attention_mask has padding")

    def _require_live(self) -> None:
        if self.removed:
            raise RuntimeError("this reduction engine was removed")


def apply_reduction(
    model: nn.Module,
    layer: int,
    *,
    video_token_id: int | None = None,
    decode_positions: str = "authors",
) -> ReductionEngine:
    """Patches ``model`` (an instance) to reduce video tokens; one-stage reducers run before decoder
    layer ``layer`` (0-based), staged methods at their own layers.

    Dispatches on ``model.config.model_type`` (the rows of ``engine/families.py``: LLaVA-OneVision,
    Qwen2-VL, Qwen2.5-VL, Qwen3-VL dense and MoE, InternVL, the hybrid Qwen3.5 dense and MoE, and the
    text-only ``qwen2`` / ``qwen3_5_text`` decoders); an unknown type raises ``ValueError``. ``video_token_id`` overrides the
    config's placeholder id. ``decode_positions``: ``"authors"`` or ``"compact"`` (module
    docstring). A model can carry one engine at a time.
    """
    family = family_of(model)
    text = family.text_model(model)
    if id(text) in _ENGINES:
        raise RuntimeError("this model already has a reduction engine; remove it first")
    token_id = video_token_id if video_token_id is not None else family.video_token_id(model)
    engine = ReductionEngine(model, family, layer, token_id, decode_positions)
    _ENGINES[id(text)] = engine
    return engine


def engine_of(model: nn.Module) -> ReductionEngine | None:
    """The live engine on ``model``, if any."""
    return _ENGINES.get(id(family_of(model).text_model(model)))


def remove_reduction(model: nn.Module) -> None:
    """Removes the engine on ``model``; raises ``ValueError`` if there is none."""
    engine = engine_of(model)
    if engine is None:
        raise ValueError("this model has no reduction engine")
    engine.remove()
