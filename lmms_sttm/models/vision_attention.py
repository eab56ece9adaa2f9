"""The vision tower's received attention per token, on the LLM's token grid: the vision-side
scores of FlashVID (its ``[CLS]``-attention selections) and HoliTom (its dominant tokens).

Computed the way FlashVID's code computes them, without switching the tower to eager attention: a
forward hook on the attention module of the vision layer the authors read recomputes, from that
module's own projections on the module's input, each frame's attention probabilities
``A = softmax(Q K^T * scale)`` ``[heads, n, n]`` (float32) and keeps ``r = mean over heads and over
queries of A`` ``[n]``: the attention each token receives. The tower itself runs with whatever
attention it was loaded with (sdpa, flash-attention); only one frame's map exists at a time.

Per family (the layer read, then the mapping to the LLM's grid, the same as the features'):

- LLaVA-OneVision / LLaVA-Video (SigLIP): the encoder layer whose output is the selected feature
  layer (``vision_feature_layer``; LLaVA-NeXT's tower drops SigLIP's last layer and FlashVID reads
  ``attentions[-1]`` of that tower, the same layer). ``Q``/``K``: ``q_proj``/``k_proj`` on the
  layer's attention input (after ``layer_norm1``), ``scale``. ``[F, 729]`` (a ``[CLS]`` key dropped
  with ``vision_feature_select_strategy=default``), then the model's own ``apply_pooling`` (bilinear
  27 x 27 -> 14 x 14, as the projected features) on the map as one channel: ``[F, 14*14]``.
- Qwen2-VL / Qwen2.5-VL / Qwen3-VL / Qwen3.5 (Qwen3-VL's tower without DeepStack taps): the last vision block, per chunk of the ``cu_seqlens`` it is
  given (one temporal patch each: the last block attends over the whole patch), ``Q``/``K``: ``qkv``
  and the model's ``apply_rotary_pos_emb_vision`` with the block's ``position_embeddings``,
  ``scaling``. ``[t*h*w]`` in the tower's token order, in which every 4 consecutive tokens are one
  2 x 2 merge unit (the merger concatenates them): mean over each -> ``[t*h'*w']``; Qwen2.5-VL's
  blocks run in window order, put back in raster order with ``argsort(window_index)`` as the
  merger output is: ``[t, h'*w']``.
- InternVL3.5 (InternViT; not supported by the authors, the analogue here): the encoder layer of
  the selected feature layer, ``Q``/``K`` through ``q_proj``/``k_proj`` and its ``q_norm``/``k_norm``;
  the ``[CLS]`` key dropped (``default`` strategy), then the model's own ``pixel_shuffle`` on the map
  as one channel and the mean of each 2 x 2 group it stacks: ``[F, s*s]``.

Precision: ``Q``/``K`` in the model's dtype (its projections), logits and softmax in float32.

Two kinds of score (``KINDS``), from the same hook on the same layer:

- ``received`` (above): every query's attention, averaged over heads and queries (FlashVID, HoliTom).
- ``frame_query``: the attention of one query per frame, the mean of the frame's queries ``q_bar``
  (FastVID's Qwen2.5-VL code): ``softmax(q_bar K^T * scale)`` over the frame's keys, mean over heads.
  On Qwen (FastVID's own computation) ``q_bar`` averages the frame's RoPE'd queries of the last
  block and each key is the mean of its 2 x 2 merge unit's 4 keys, so the softmax runs over the
  merge units; every token gets its unit's score, so the mapping to the grid (the mean over each
  unit) is the same as above. On SigLIP / InternViT (generalised: FastVID's LLaVA code reads the
  attention of SigLIP's pooling head, a learned probe query, but LLaVA checkpoints ship without
  that head) ``q_bar`` averages the queries of all the frame's tokens at the same layer as above
  and the keys are per token; the map then goes through the same pooling as above.
"""

from __future__ import annotations

import sys
from functools import partial

import torch
from torch import nn

#: frames scored at once on the SigLIP / InternViT path (bounds the float32 maps to CHUNK x heads x n x n)
CHUNK = 8


#: the score kinds (module docstring); a method declares the one it reads (``MethodSpec.vision_score``)
KINDS = ("received", "frame_query")


def received(q: torch.Tensor, k: torch.Tensor, scale: float) -> torch.Tensor:
    """``q, k [B, H, n, d]`` -> ``[B, n]`` float32: ``softmax(q k^T * scale)`` mean over heads and queries."""
    logits = torch.matmul(q.float(), k.float().transpose(-1, -2)) * scale
    return logits.softmax(dim=-1).mean(dim=(1, 2))


def frame_query(q: torch.Tensor, k: torch.Tensor, scale: float) -> torch.Tensor:
    """``q [B, H, n, d]``, ``k [B, H, m, d]`` -> ``[B, m]`` float32: ``softmax(q_bar k^T * scale)`` of the
    mean query ``q_bar`` (over the ``n`` queries), mean over heads."""
    q_bar = q.float().mean(dim=2, keepdim=True)  # [B, H, 1, d]
    logits = torch.matmul(q_bar, k.float().transpose(-1, -2)) * scale
    return logits.softmax(dim=-1).mean(dim=(1, 2))


def _kind(kind) -> str:
    """``True`` (a plain request) is ``received``."""
    kind = "received" if kind is True else kind
    if kind not in KINDS:
        raise ValueError(f"vision attention score kind {kind!r}; use one of {list(KINDS)}")
    return kind


def _first(args: tuple, kwargs: dict, name: str, index: int):
    return args[index] if len(args) > index else kwargs.get(name)


def projection_scores(attn: nn.Module, args: tuple, kwargs: dict, kind: str = "received") -> torch.Tensor:
    """SigLIP / InternViT attention (separate ``q_proj``/``k_proj``, optional ``q_norm``/``k_norm`` over
    the whole width): its input ``[B, n, C]`` -> ``[B, n]`` of score ``kind``."""
    score = received if kind == "received" else frame_query
    hidden = _first(args, kwargs, "hidden_states", 0)
    if _first(args, kwargs, "attention_mask", 1) is not None:
        raise ValueError(
            "vision attention scores: the tower's attention got a mask; only unmasked frames are scored"
        )
    b, n, _ = hidden.shape
    scale = attn.scale if hasattr(attn, "scale") else attn.scaling
    out = []
    for i in range(0, b, CHUNK):
        x = hidden[i : i + CHUNK]
        heads = []
        for proj, norm in ((attn.q_proj, "q_norm"), (attn.k_proj, "k_norm")):
            y = proj(x)
            if getattr(attn, norm, None) is not None:
                y = getattr(attn, norm)(y)
            heads.append(y.view(x.shape[0], n, -1, attn.head_dim).transpose(1, 2))
        out.append(score(heads[0], heads[1], scale))
    return torch.cat(out)


def qkv_scores(
    attn: nn.Module, args: tuple, kwargs: dict, kind: str = "received", unit: int = 4
) -> torch.Tensor:
    """Qwen vision attention (fused ``qkv``, vision RoPE, ``cu_seqlens`` chunks): its input ``[n, C]`` ->
    ``[n]``, each chunk's tokens scored within the chunk; ``frame_query``: over the chunk's merge units
    (``unit`` consecutive tokens, keys averaged), each token given its unit's score."""
    hidden = _first(args, kwargs, "hidden_states", 0)
    cu = _first(args, kwargs, "cu_seqlens", 1)
    cos, sin = kwargs["position_embeddings"]
    n = hidden.shape[0]
    q, k, _ = attn.qkv(hidden).reshape(n, 3, attn.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
    rope = sys.modules[type(attn).__module__].apply_rotary_pos_emb_vision
    q, k = rope(q, k, cos, sin)  # [n, H, d]
    bounds = [int(v) for v in cu]
    out = []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        qc, kc = q[a:b].transpose(0, 1)[None], k[a:b].transpose(0, 1)[None]  # [1, H, b-a, d]
        if kind == "received":
            out.append(received(qc, kc, attn.scaling)[0])
            continue
        units = kc.reshape(*kc.shape[:2], -1, unit, kc.shape[-1]).mean(dim=3)  # [1, H, (b-a)/unit, d]
        out.append(frame_query(qc, units, attn.scaling)[0].repeat_interleave(unit))
    return torch.cat(out)


class ReceivedAttention:
    """``with ReceivedAttention(module, score):`` collects ``score(module, args, kwargs)`` of each call
    of ``module`` (a forward hook, removed on exit); ``scores`` concatenates them along dim 0."""

    def __init__(self, module: nn.Module, score) -> None:
        self.module, self.score = module, score
        self.calls: list[torch.Tensor] = []
        self._handle = None

    def __enter__(self) -> ReceivedAttention:
        self._handle = self.module.register_forward_hook(self._hook, with_kwargs=True)
        return self

    def __exit__(self, *exc) -> None:
        self._handle.remove()

    def _hook(self, module, args, kwargs, output) -> None:
        with torch.no_grad():
            self.calls.append(self.score(module, args, kwargs))

    @property
    def scores(self) -> torch.Tensor:
        if not self.calls:
            raise RuntimeError(f"vision attention scores: {type(self.module).__name__} was never called")
        return torch.cat(self.calls, dim=0)


# ----------------------------------------------------------------------------- which layer
def _feature_layer(model, num_layers: int) -> int:
    """Index of the encoder layer whose output is ``hidden_states[vision_feature_layer]`` (the deepest
    one when several layers are concatenated)."""
    chosen = model.config.vision_feature_layer
    picks = chosen if isinstance(chosen, (list, tuple)) else [chosen]
    layers = [p - 1 if p >= 0 else num_layers + p for p in picks]
    if min(layers) < 0:
        raise ValueError(f"vision_feature_layer={chosen} selects the embeddings, which have no attention")
    return max(layers)


def llava_attention_module(model) -> nn.Module:
    """SigLIP's attention module of the layer LLaVA's features come from."""
    tower = model.model.vision_tower
    layers = getattr(tower, "vision_model", tower).encoder.layers
    return layers[_feature_layer(model, len(layers))].self_attn


def internvl_attention_module(model) -> nn.Module:
    """InternViT's attention module of the layer InternVL's features come from."""
    layers = model.model.vision_tower.encoder.layer
    return layers[_feature_layer(model, len(layers))].attention


def qwen_attention_module(model) -> nn.Module:
    """The last vision block's attention (Qwen2-VL, Qwen2.5-VL, Qwen3-VL, Qwen3.5)."""
    return model.model.visual.blocks[-1].attn


def recorder(model, family: str, kind: str | bool = "received") -> ReceivedAttention:
    """The hook that scores ``family``'s vision layer with score ``kind`` (``KINDS``; ``True``:
    ``received``); enter it around the tower's forward."""
    kind = _kind(kind)
    if family == "llava":
        return ReceivedAttention(llava_attention_module(model), partial(projection_scores, kind=kind))
    if family == "internvl":
        return ReceivedAttention(internvl_attention_module(model), partial(projection_scores, kind=kind))
    if family in ("qwen", "qwen3_vl"):
        unit = model.model.visual.spatial_merge_size**2
        return ReceivedAttention(qwen_attention_module(model), partial(qkv_scores, kind=kind, unit=unit))
    raise ValueError(f"no vision attention scores for family {family!r}")


# ----------------------------------------------------------------------------- the LLM's grid
def _without_cls(model, scores: torch.Tensor) -> torch.Tensor:
    return scores[:, 1:] if model.config.vision_feature_select_strategy == "default" else scores


def llava_grid_scores(model, scores: torch.Tensor) -> torch.Tensor:
    """SigLIP scores ``[F, N(+1)]`` -> ``[F, h*w]`` through the features' own pooling (``apply_pooling``)."""
    tower = _without_cls(model, scores)
    return model.model.apply_pooling(tower[..., None].contiguous())[..., 0]


def internvl_grid_scores(model, scores: torch.Tensor) -> torch.Tensor:
    """InternViT scores ``[F, 1 + s0*s0]`` -> ``[F, s*s]``: the features' ``pixel_shuffle`` on one channel,
    then the mean of the 2 x 2 group each output token stacks."""
    tower = _without_cls(model, scores)
    f, n = tower.shape
    side = int(round(n**0.5))
    shuffled = model.model.pixel_shuffle(
        tower.reshape(f, side, side, 1), scale_factor=model.config.downsample_ratio
    )
    return shuffled.mean(dim=-1).reshape(f, -1)


def qwen_grid_scores(model, scores: torch.Tensor, thw: torch.Tensor) -> torch.Tensor:
    """Last-block scores ``[t*h*w]`` (the tower's token order) and ``video_grid_thw [1, 3]`` ->
    ``[t, h'*w']`` in the merger output's (raster) order."""
    visual = model.model.visual
    merge = visual.spatial_merge_size
    grouped = scores.view(-1, merge * merge).mean(dim=-1)
    if hasattr(visual, "fullatt_block_indexes"):  # Qwen2.5-VL: the blocks run in window order
        from transformers.vision_utils import get_vision_window_index

        window_index, _ = get_vision_window_index(
            thw, spatial_merge_size=merge, window_size=visual.window_size, patch_size=visual.patch_size
        )
        grouped = grouped[torch.argsort(window_index.to(grouped.device))]
    return grouped.view(int(thw[0, 0]), -1)
