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
fair), float32. Both sides get the same saliency (``merging.fastvid.default_saliency``: on their
side it stands for the SigLIP pooling head's attention) and the same frame features (the frame
means: for the pooling head's output). Settings: the authors' (c 8, tau 0.9, d 0.4, p 4, beta 0.6)
at retention ratios 0.10 and 0.25 (their headline range) and 0.30 (``budget=30``); 0.50
(``budget=50``) is run too: their code raises there (a context frame is asked for more tokens
than it has left) and the driver records that.

Their densities get ``U(0, 1e-6)`` noise from ``torch.rand``: each case runs their code with two
seeds (how far it moves against itself) and compares ours with seed 0: the kept set (original
indices of the frames' tokens; their newline tokens are left out) and the kept features (max
absolute difference). Prints JSON.

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

REL = "fastvid_llavavideo/LLaVA-NeXT/llava/model/language_model/modeling_qwen2.py"
T, H, W, C = 64, 13, 13, 64
ROW = W + 1  # their newline column
PREFIX, SUFFIX = 6, 10
RATIOS = (0.10, 0.25, 0.30, 0.50)
SIMILARITY = ("mid", "high", "low", "fair")


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


def main() -> None:
    p = pinned.parser(pinned.FASTVID, __doc__.splitlines()[0])
    p.add_argument("--videos", type=int, default=6, help="seeds per similarity level")
    args = p.parse_args()
    forward = their_forward(pinned.root_from(pinned.FASTVID, args))
    cases, same, self_same, raised, diff, self_diff = 0, 0, 0, [], [], []
    max_feat = 0.0
    for sim in SIMILARITY:
        for seed in range(args.videos):
            x = video(T, H, W, C, seed, sim)
            flat = x.reshape(-1, C)
            saliency = default_saliency(x.reshape(T, H * W, C))
            frames = x.reshape(T, H * W, C).mean(dim=1)
            for ratio in RATIOS:
                params = FastVidParams(ratio=ratio)
                case = f"{sim} seed {seed} ratio {ratio}"
                try:
                    idx0, feat0 = their_kept(forward, params, x, saliency, frames, 0, seed)
                    idx1, _ = their_kept(forward, params, x, saliency, frames, 1, seed)
                except RuntimeError as e:
                    raised.append(f"{case}: {str(e).splitlines()[0][:80]}")
                    continue
                cases += 1
                if torch.equal(idx0, idx1):
                    self_same += 1
                else:
                    self_diff.append(f"{case}: {len(set(idx0.tolist()) ^ set(idx1.tolist()))} tokens")
                plan = fastvid_plan(flat, (T, H, W), params, saliency=saliency, frame_features=frames)
                if torch.equal(plan.rep_index, idx0):
                    same += 1
                    max_feat = max(max_feat, float((plan.features - feat0).abs().max()))
                else:
                    sym = len(set(plan.rep_index.tolist()) ^ set(idx0.tolist()))
                    diff.append(f"{case}: authors {idx0.numel()} kept, ours {plan.num_kept}, {sym} differ")
    pinned.emit(pinned.FASTVID, {
        "cases": cases, "same_kept_set": same, "different": diff, "max_feature_diff": max_feat,
        "authors_self_same": self_same, "authors_self_different": self_diff, "authors_raised": raised,
    })  # fmt: skip


if __name__ == "__main__":
    main()
