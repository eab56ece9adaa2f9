"""FastVID's saliency score against the authors' Qwen2.5-VL code (the score block of
``Qwen2_5_VLVisionFlashAttention2.forward`` in their
``fastvid_qwen25vl/lmms-eval/lmms_eval/models/qwenvlutils/modeling_qwen2_5_vl.py``).

Their score is computed inside the last vision block's attention (their tower passes ``grid_thw``
to that block only): RoPE'd ``q``/``k`` from the block's ``qkv``; per temporal patch, the mean of
its queries against the mean key of each 4 consecutive tokens (a 2 x 2 merge unit); softmax over
the units; mean over heads: ``[t, h*w/4]`` in the tower's (window) order. This package computes it
in a forward hook on the same module (``models.vision_attention.qkv_scores``, kind
``frame_query``), per ``cu_seqlens`` chunk (in the last block, a full-attention block, one temporal
patch each).

The driver compiles that one method (and their ``rotate_half`` / ``apply_rotary_pos_emb_vision``)
from the pinned file with stand-ins for what it calls besides the score: flash-attention (zeros,
its output is not compared) and their flash RoPE helper (identity). The file's imports
(their transformers 4.x, loguru) never run. Both sides get the same attention module (a seeded
random transformers ``Qwen2_5_VLVisionAttention``, 2 heads of 16), the same block input and the
same rotary ``cos``/``sin``; ``--inputs`` seeds x 3 grids (t, h, w) = (2, 8, 12), (4, 16, 16),
(8, 6, 10), in float32 and bfloat16. Compared: the scores (max absolute difference) and, as
FastVID uses them, each frame's top-k set for k = 10%, 25% and 50% of its units (ties to the lower
index on both sides); a different set is ``tie_only`` when the authors' own scores of our set are
the same multiset as those of theirs (their bfloat16 softmax output ties often). Prints JSON.

    .venv/bin/python scripts/parity/fastvid_saliency.py --authors-dir DIR [--inputs 8]
"""

from __future__ import annotations

import ast
import math
import sys
import typing
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pinned  # noqa: E402

from lmms_sttm.models.vision_attention import qkv_scores  # noqa: E402

REL = "fastvid_qwen25vl/lmms-eval/lmms_eval/models/qwenvlutils/modeling_qwen2_5_vl.py"
GRIDS = ((2, 8, 12), (4, 16, 16), (8, 6, 10))
HEADS, HEAD_DIM = 2, 16
SHARES = (0.10, 0.25, 0.50)


class _Logger:
    def warning_once(self, *a) -> None:
        pass


def their_functions(root: Path):
    """The authors' attention ``forward`` (score block included), compiled alone with stand-in globals."""
    text = pinned.check(pinned.FASTVID, root, REL).read_text()
    tree = ast.parse(text)
    picked = [
        n
        for n in tree.body
        if isinstance(n, ast.FunctionDef) and n.name in ("rotate_half", "apply_rotary_pos_emb_vision")
    ]
    cls = next(
        n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Qwen2_5_VLVisionFlashAttention2"
    )
    picked.append(next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "forward"))
    names = {"torch": torch, "nn": torch.nn, "math": math, "logger": _Logger()}
    names.update({k: getattr(typing, k) for k in ("Optional", "Tuple")})
    names["apply_rotary_pos_emb_flashatt"] = lambda q, k, cos, sin: (q, k)
    names["flash_attn_varlen_func"] = lambda q, k, v, *a: torch.zeros_like(q)
    exec(compile(ast.Module(body=picked, type_ignores=[]), str(root / REL), "exec"), names)
    return names["forward"]


class StandIn:
    """What their ``forward`` reads of ``self``: the module's ``qkv``/``proj`` and head layout."""

    def __init__(self, attn) -> None:
        self.qkv, self.proj = attn.qkv, attn.proj
        self.num_heads, self.head_dim = HEADS, HEAD_DIM


def make_case(seed: int, grid, dtype):
    """A seeded random vision attention module, block input ``[n, C]``, ``cos``/``sin`` and ``cu_seqlens``."""
    from transformers import Qwen2_5_VLConfig
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLVisionAttention

    vision = Qwen2_5_VLConfig(
        vision_config={"hidden_size": HEADS * HEAD_DIM, "num_heads": HEADS}
    ).vision_config
    gen = torch.Generator().manual_seed(seed)
    attn = Qwen2_5_VLVisionAttention(vision).eval()
    with torch.no_grad():
        for p in attn.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    attn = attn.to(dtype)
    t, h, w = grid
    n = t * h * w
    hidden = torch.randn(n, HEADS * HEAD_DIM, generator=gen).to(dtype)
    theta = torch.rand(n, HEAD_DIM // 2, generator=gen) * 20
    emb = torch.cat([theta, theta], dim=-1)
    cu = torch.arange(0, n + 1, h * w, dtype=torch.int32)
    return attn, hidden, (emb.cos(), emb.sin()), cu


def top_sets(scores: torch.Tensor, share: float) -> list[set]:
    """``scores [t, u]`` -> each frame's ``max(1, int(u * share))`` highest (ties: lower index)."""
    k = max(1, int(scores.shape[1] * share))
    order = torch.argsort(-scores.float(), dim=1, stable=True)[:, :k]
    return [set(row.tolist()) for row in order]


def same_scores(scores: torch.Tensor, a: set, b: set) -> bool:
    """The same multiset of ``scores`` on the index sets ``a`` and ``b``."""
    return sorted(scores[sorted(a)].tolist()) == sorted(scores[sorted(b)].tolist())


def main() -> None:
    p = pinned.parser(pinned.FASTVID, __doc__.splitlines()[0])
    p.add_argument("--inputs", type=int, default=8, help="seeds per grid (3 grids)")
    args = p.parse_args()
    forward = their_functions(pinned.root_from(pinned.FASTVID, args))
    out = {}
    for dtype in (torch.float32, torch.bfloat16):
        tally = {
            "cases": 0,
            "max_abs_diff": 0.0,
            "same_top_sets": {str(s): 0 for s in SHARES},
            "tie_only": {str(s): 0 for s in SHARES},
            "different": [],
        }
        for seed in range(args.inputs):
            for grid in GRIDS:
                attn, hidden, rope, cu = make_case(seed, grid, dtype)
                t, h, w = grid
                with torch.no_grad():
                    _, theirs = forward(StandIn(attn), hidden, cu, None, rope, torch.tensor([[t, h, w]]))
                    ours = qkv_scores(
                        attn, (hidden,), {"cu_seqlens": cu, "position_embeddings": rope}, "frame_query", 4
                    )
                theirs = theirs.float().reshape(t, -1)
                ours = ours[::4].reshape(t, -1)  # one score per merge unit, the tower's order
                tally["cases"] += 1
                tally["max_abs_diff"] = max(tally["max_abs_diff"], float((theirs - ours).abs().max()))
                for share in SHARES:
                    a, b = top_sets(theirs, share), top_sets(ours, share)
                    if a == b:
                        tally["same_top_sets"][str(share)] += 1
                    elif all(same_scores(theirs[f], x, y) for f, (x, y) in enumerate(zip(a, b, strict=True))):
                        tally["tie_only"][str(share)] += 1
                    else:
                        tally["different"].append(f"seed {seed} grid {grid} top {share}")
        out[str(dtype).removeprefix("torch.")] = tally
    pinned.emit(pinned.FASTVID, out)


if __name__ == "__main__":
    main()
