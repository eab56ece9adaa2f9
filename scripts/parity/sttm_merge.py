"""STTM merging against the authors' ``quadtree_build_video``: same tokens, rectangles, features.

For every synthetic video (:mod:`videos`: 6 layouts x ``--videos`` seeds, alternating high, mid
and low similarity) and every threshold pair in :data:`THRESHOLDS`, runs the authors'
``token_merging_utils.quadtree_builder.quadtree_build_video`` (their ``[T, C, H, W]`` input,
``root_level=1`` as their scripts pass) and ``lmms_sttm.merging.sttm.merge_video`` on the same
grid, in float32 and in bfloat16, and counts the cases where the token count, the rectangles
``(t, y0, x0, y1, x1)`` in order, and the features agree. ``union_find=components`` (exact
connected components, an option here) is run too, to show that the comparison can tell two
groupings apart.

A case whose count or rectangles differ is rerun with both thresholds moved by +-1e-6 (the four
combinations): when both sides then agree on each, some similarity sat within 1e-6 of the threshold, where
two float32 computations of one cosine (different summation order) may fall on either side; it
is counted under ``rounding`` with the pair, else under ``differ``. Prints JSON.

    .venv/bin/python scripts/parity/sttm_merge.py --authors-dir DIR [--videos 14]
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import authors  # noqa: E402
from videos import LAYOUTS, video  # noqa: E402

from lmms_sttm.merging.sttm import merge_video  # noqa: E402

#: (tau_s, tau_t): the paper's LLaVA-Video pairs and a spread around them
THRESHOLDS = ((0.8, 0.6), (0.85, 0.75), (0.9, 0.8), (0.7, 0.9), (0.95, 0.95), (0.6, 0.5))
SIMILARITY = ("high", "mid", "low")
NEEDS = ("token_merging_utils/quadtree_spatial_merger.py", "token_merging_utils/quadtree_temporal_merger.py")


def compare(theirs, ours) -> tuple[bool, bool, float]:
    """(same count, same rectangles in order, max feature difference) of the two results; the
    difference in units of the last place of each token's largest component in the features' dtype
    (bf16: 8 significant bits, float32: 24), so it reads the same at any feature scale."""
    feats, _, tlbr = theirs
    same_count = feats.shape[0] == ours.num_kept
    same_rects = same_count and torch.equal(tlbr.long(), ours.tlbr.long())
    if not same_rects:
        return same_count, same_rects, float("inf")
    a, b = feats.double(), ours.features.double()
    bits = 8 if feats.dtype == torch.bfloat16 else 24
    scale = torch.maximum(a.abs(), b.abs()).amax(dim=-1, keepdim=True).clamp_min(1e-30)  # per token
    ulp = torch.exp2(torch.floor(torch.log2(scale)) - (bits - 1))
    return same_count, same_rects, float(((a - b).abs() / ulp).max())


NUDGE = 1e-6


def agree(builder, x: torch.Tensor, tau_s: float, tau_t: float) -> bool:
    """Both sides give the same count and rectangles for these thresholds."""
    theirs = builder.quadtree_build_video(x.permute(0, 3, 1, 2).contiguous(), tau_s, tau_t, root_level=1)
    return compare(theirs, merge_video(x, tau_s, tau_t, root_level=1))[1]


def at_rounding_distance(builder, x: torch.Tensor, tau_s: float, tau_t: float) -> bool:
    """Whether every threshold pair nudged by +-NUDGE makes both sides agree (see the module docstring)."""
    nudged = [(tau_s + ds, tau_t + dt) for ds in (-NUDGE, NUDGE) for dt in (-NUDGE, NUDGE)]
    return all(agree(builder, x, s, t) for s, t in nudged)


def main(argv=None) -> int:
    p = authors.parser(__doc__.splitlines()[0])
    p.add_argument("--videos", type=int, default=14, help="seeded videos per layout")
    p.add_argument("--channels", type=int, default=64)
    args = p.parse_args(argv)
    builder = authors.import_module(authors.root_from(args), "token_merging_utils.quadtree_builder", NEEDS)
    torch.set_num_threads(1)
    totals = {"float32": [0, 0, 0, 0.0], "bfloat16": [0, 0, 0, 0.0]}  # cases, count, rects, max diff
    components_differ, examples = 0, []
    mismatches = {"rounding": [], "differ": []}
    for name, t, h, w in LAYOUTS:
        for seed in range(args.videos):
            x32 = video(t, h, w, args.channels, seed, SIMILARITY[seed % 3])
            for tau_s, tau_t in THRESHOLDS:
                for dtype, x in (("float32", x32), ("bfloat16", x32.to(torch.bfloat16))):
                    theirs = builder.quadtree_build_video(
                        x.permute(0, 3, 1, 2).contiguous(), tau_s, tau_t, root_level=1
                    )
                    ours = merge_video(x, tau_s, tau_t, root_level=1)
                    count, rects, diff = compare(theirs, ours)
                    tot = totals[dtype]
                    tot[0] += 1
                    tot[1] += count
                    tot[2] += rects
                    if rects:
                        tot[3] = max(tot[3], diff)
                    else:
                        kind = "rounding" if at_rounding_distance(builder, x, tau_s, tau_t) else "differ"
                        mismatches[kind].append(f"{dtype} {name} seed {seed} ({tau_s}, {tau_t}): authors "
                                                f"{theirs[0].shape[0]} tokens, ours {ours.num_kept}")  # fmt: skip
                    if dtype == "float32":
                        comp = merge_video(x, tau_s, tau_t, root_level=1, union_find="components")
                        if comp.num_kept != theirs[0].shape[0]:
                            components_differ += 1
                            if len(examples) < 3:
                                examples.append(f"{name} seed {seed} ({tau_s}, {tau_t}): components "
                                                f"{comp.num_kept} vs authors {theirs[0].shape[0]}")  # fmt: skip
    authors.emit(
        {
            "driver": "sttm_merge",
            "videos": len(LAYOUTS) * args.videos,
            "threshold_pairs": len(THRESHOLDS),
            **{
                dtype: {"cases": c, "same_count": n, "same_rectangles": r, "max_feature_diff_ulps": d}
                for dtype, (c, n, r, d) in totals.items()
            },
            "mismatch_at_rounding_distance": mismatches["rounding"],
            "mismatch_otherwise": mismatches["differ"],
            "union_find_components_other_count": components_differ,
            "components_examples": examples,
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
