"""FastVID against the authors' LLaVA-Video code (``Qwen2Model.forward`` of their
``fastvid_llavavideo/LLaVA-NeXT/llava/model/language_model/modeling_qwen2.py``).

Their FastVID is a block inside the decoder's ``forward``, not a function of its own. The driver
reads that one method's source from the pinned file (``ast``) and runs it with stand-ins for what
it touches besides the block: the transformers cache classes and output type (names only, unused
with ``use_cache=False``), a rotary embedding that returns the position ids, no causal mask, the
final norm as identity and a single decoder layer that records the hidden states and position ids
it receives. The file's imports (their transformers 4.x, loguru) are never executed.

Input: ``[6 text tokens | 64 frames x 13 rows x (13 tokens + newline) | 10 text tokens]`` (their
code hard-codes LLaVA-Video's 64 x 13 x 13 grid and its newline column), the video from
:mod:`videos` (layout ``llava_video``; ``--videos`` seeds x similarity levels mid, high, low and
fair: 24 videos by default), float32. Both sides get the same saliency ``[T, H*W]`` (their
``frame_attn_weights``) and the same frame features (the frame means; their
``frame_global_features``). Two saliency sources, each case run with both:

- ``vision``: what the engine now gives FastVID, the vision tower's frame-mean-query attention
  (``models.vision_attention.frame_query``), here of one head with seeded random ``Q``/``K``
  projections of the video's tokens: per frame ``softmax(mean_i(Q_i) K^T / sqrt(C))``;
- ``stand_in``: the fallback without vision scores (``merging.fastvid.default_saliency``).

Settings: the authors' (c 8, tau 0.9, d 0.4, p 4, beta 0.6) at retention ratios 0.10 and 0.25
(their headline range) and 0.30 (``budget=30``); 0.50 (``budget=50``) is run too: their code
raises there (a context frame is asked for more tokens than it has left) and the driver records it.

Their densities get ``U(0, 1e-6)`` noise from ``torch.rand``: each case runs their code with two
seeds (how far it moves against itself) and compares ours with seed 0: the kept set (original
indices of the frames' tokens; their newline tokens are left out) and the merged groups through
the kept features (a context token's feature is ``w * itself + (1 - w) * mean(its group)``, so
with the same kept set equal features mean the same groups: ``same_merged_features`` counts the
cases within 1e-4, ``max_feature_diff`` is the largest absolute difference). Prints JSON.

    .venv/bin/python scripts/parity/fastvid.py --authors-dir DIR [--videos 6]
"""

from __future__ import annotations

import ast
import sys
import typing
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pinned  # noqa: E402
from videos import video  # noqa: E402

from lmms_sttm.merging.fastvid import FastVidParams, default_saliency, fastvid_plan  # noqa: E402
from lmms_sttm.models.vision_attention import frame_query  # noqa: E402

REL = "fastvid_llavavideo/LLaVA-NeXT/llava/model/language_model/modeling_qwen2.py"
T, H, W, C = 64, 13, 13, 64
ROW = W + 1  # their newline column
PREFIX, SUFFIX = 6, 10
RATIOS = (0.10, 0.25, 0.30, 0.50)
SIMILARITY = ("mid", "high", "low", "fair")
SOURCES = ("vision", "stand_in")
FEATURE_TOL = 1e-4


def vision_saliency(frames: torch.Tensor, seed: int) -> torch.Tensor:
    """``frames [T, F, C]`` -> ``[T, F]``: the frame-mean query's attention with seeded random
    single-head ``Q``/``K`` projections (the engine's ``frame_query`` score, on the video's tokens)."""
    gen = torch.Generator().manual_seed(1000 + seed)
    c = frames.shape[-1]
    wq, wk = (torch.randn(c, c, generator=gen) / c**0.5 for _ in range(2))
    q, k = (frames @ w for w in (wq, wk))  # [T, F, C]
    return frame_query(q[:, None], k[:, None], c**-0.5)


def their_forward(root: Path):
    """The authors' ``Qwen2Model.forward``, compiled alone with stand-in globals."""
    text = pinned.check(pinned.FASTVID, root, REL).read_text()
    tree = ast.parse(text)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Qwen2Model")
    fn = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "forward")
    module = ast.Module(body=[fn], type_ignores=[])
    names = {"torch": torch, "logger": None, "BaseModelOutputWithPast": None}
    names.update({k: getattr(typing, k) for k in ("List", "Optional", "Tuple", "Union")})
    names.update({k: type(k, (), {}) for k in ("Cache", "DynamicCache", "StaticCache", "SlidingWindowCache")})
    exec(compile(module, str(root / REL), "exec"), names)
    return names["forward"]


class Recorder:
    def __init__(self) -> None:
        self.hidden = self.positions = None

    def __call__(self, hidden_states, position_ids=None, **kw):
        self.hidden, self.positions = hidden_states, position_ids
        return (hidden_states,)


class StandIn:
    """What their ``forward`` reads of ``self`` besides the FastVID block."""

    gradient_checkpointing = False
    training = False

    def __init__(self, params: FastVidParams, saliency: torch.Tensor, frames: torch.Tensor) -> None:
        self.layers = [Recorder()]
        self.video_start_idx, self.video_token_len, self.frame_num = PREFIX, T * H * ROW, T
        self.frame_attn_weights, self.frame_global_features = saliency, frames
        self.fastvid_retention_ratio, self.fastvid_DySeg_c = params.ratio, params.c
        self.fastvid_DySeg_tau, self.fastvid_STPrune_d = params.tau, params.d
        self.fastvid_DTM_p, self.fastvid_DTM_beta = params.p, params.beta

    def _update_causal_mask(self, *a):
        return None

    def rotary_emb(self, hidden, position_ids):
        pos = position_ids.float()[..., None]
        return pos, pos

    def norm(self, hidden):
        return hidden


def with_newlines(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """``[T, H, W, C]`` -> ``[T*H*(W+1), C]`` with a newline token closing every row."""
    newline = torch.randn(C, generator=gen)
    return torch.cat([x, newline.expand(T, H, 1, C)], dim=2).reshape(-1, C)


def their_kept(forward, params, x, saliency, frames, seed: int, gen_seed: int):
    gen = torch.Generator().manual_seed(gen_seed)
    seq = torch.cat(
        [torch.randn(PREFIX, C, generator=gen), with_newlines(x, gen), torch.randn(SUFFIX, C, generator=gen)]
    )
    stand = StandIn(params, saliency, frames)
    torch.manual_seed(seed)
    forward(stand, inputs_embeds=seq[None], use_cache=False, output_attentions=False,
            output_hidden_states=False, return_dict=False)  # fmt: skip
    rec = stand.layers[0]
    pos = rec.positions[0] - PREFIX
    inside = (pos >= 0) & (pos < T * H * ROW) & ((pos + 1) % ROW != 0)
    p = pos[inside]
    frame, within = p // (H * ROW), p % (H * ROW)
    index = frame * H * W + (within // ROW) * W + within % ROW
    return index, rec.hidden[0][inside]


def compare(forward, x: torch.Tensor, saliency: torch.Tensor, frames: torch.Tensor, seed: int) -> dict:
    """Every ratio on one video and saliency: the per-source tallies' increments
    (``kept_unlike_stand_in``: cases where our kept set differs from ours on the stand-in)."""
    out = {"cases": 0, "same_kept_set": 0, "same_merged_features": 0, "max_feature_diff": 0.0,
           "different": [], "authors_self_same": 0, "authors_self_different": [], "authors_raised": [],
           "kept_unlike_stand_in": 0}  # fmt: skip
    flat = x.reshape(-1, C)
    for ratio in RATIOS:
        params = FastVidParams(ratio=ratio)
        case = f"seed {seed} ratio {ratio}"
        try:
            idx0, feat0 = their_kept(forward, params, x, saliency, frames, 0, seed)
            idx1, _ = their_kept(forward, params, x, saliency, frames, 1, seed)
        except RuntimeError as e:
            out["authors_raised"].append(f"{case}: {str(e).splitlines()[0][:80]}")
            continue
        out["cases"] += 1
        if torch.equal(idx0, idx1):
            out["authors_self_same"] += 1
        else:
            out["authors_self_different"].append(
                f"{case}: {len(set(idx0.tolist()) ^ set(idx1.tolist()))} tokens"
            )
        plan = fastvid_plan(flat, (T, H, W), params, saliency=saliency, frame_features=frames)
        stand_in = fastvid_plan(flat, (T, H, W), params, frame_features=frames)
        out["kept_unlike_stand_in"] += not torch.equal(plan.rep_index, stand_in.rep_index)
        if torch.equal(plan.rep_index, idx0):
            out["same_kept_set"] += 1
            diff = float((plan.features - feat0).abs().max())
            out["max_feature_diff"] = max(out["max_feature_diff"], diff)
            out["same_merged_features"] += diff <= FEATURE_TOL
        else:
            sym = len(set(plan.rep_index.tolist()) ^ set(idx0.tolist()))
            out["different"].append(
                f"{case}: authors {idx0.numel()} kept, ours {plan.num_kept}, {sym} differ"
            )
    return out


def main() -> None:
    p = pinned.parser(pinned.FASTVID, __doc__.splitlines()[0])
    p.add_argument("--videos", type=int, default=6, help="seeds per similarity level (4 levels)")
    args = p.parse_args()
    forward = their_forward(pinned.root_from(pinned.FASTVID, args))
    result = {}
    for source in SOURCES:
        total: dict = {}
        for sim in SIMILARITY:
            for seed in range(args.videos):
                x = video(T, H, W, C, seed, sim)
                tokens = x.reshape(T, H * W, C)
                saliency = vision_saliency(tokens, seed) if source == "vision" else default_saliency(tokens)
                got = compare(forward, x, saliency, tokens.mean(dim=1), seed)
                for key, value in got.items():
                    if isinstance(value, list):
                        total.setdefault(key, []).extend(f"{sim} {v}" for v in value)
                    elif key == "max_feature_diff":
                        total[key] = max(total.get(key, 0.0), value)
                    else:
                        total[key] = total.get(key, 0) + value
        result[source] = {"videos": len(SIMILARITY) * args.videos, "ratios": list(RATIOS), **total}
    pinned.emit(pinned.FASTVID, result)


if __name__ == "__main__":
    main()
