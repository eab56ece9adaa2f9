"""VidCom2 against the authors' ``vidcom2_compression`` (``token_compressor/vidcom2/vidcom2.py``).

Per video (:mod:`videos`: every layout x ``--videos`` seeds x the similarity levels mid and high)
and base retention (0.5 and 0.3: ``budget=50|30``; 0.25 and 0.15, the authors' headline ones), in
float32 and bfloat16: the authors' function with ``model="qwen2_vl"`` (frame size given, their
linear index mapping, the one every family but LLaVA-Video uses) returns the kept rows; each row
is found in the input (the synthetic rows are distinct), giving the authors' kept set, compared
with ``lmms_sttm.merging.vidcom2.vidcom2_keep``. Both compute in the input dtype; in bfloat16 many
scores tie and the authors' unsorted ``topk`` picks among equal scores in an order of its own, so
a different set counts as ``tie_only`` when every frame keeps the same multiset of the authors'
scores (only the choice among equal scores differs). Prints JSON.

    .venv/bin/python scripts/parity/vidcom2.py --authors-dir DIR [--videos 2]
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pinned  # noqa: E402
from videos import LAYOUTS, video  # noqa: E402

from lmms_sttm.merging.vidcom2 import vidcom2_keep  # noqa: E402

RATIOS = (0.5, 0.3, 0.25, 0.15)
CHANNELS = 64


def kept_rows(x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``[N]`` bool: which rows of ``x`` appear in ``out`` (rows are distinct)."""
    where = {bytes(row.view(torch.uint8).numpy()): i for i, row in enumerate(x)}
    mask = torch.zeros(x.shape[0], dtype=torch.bool)
    for row in out:
        mask[where[bytes(row.view(torch.uint8).numpy())]] = True
    return mask


def tie_only(theirs, x: torch.Tensor, tpf: int, ref: torch.Tensor, ours: torch.Tensor) -> bool:
    """Both kept sets hold the same multiset of the authors' scores in every frame (they differ
    only in which of equally scored tokens is kept: the authors' unsorted ``topk`` leaves that open)."""
    v, f = theirs.compute_gaussian_scores(theirs.select_low_var_channels(x), tpf)
    score = (v + f).reshape(-1)
    for fr in range(x.shape[0] // tpf):
        part = slice(fr * tpf, (fr + 1) * tpf)
        a = torch.sort(score[part][ref[part]]).values
        b = torch.sort(score[part][ours[part]]).values
        if not torch.equal(a, b):
            return False
    return True


def main() -> None:
    p = pinned.parser(pinned.VIDCOM2, __doc__.splitlines()[0])
    p.add_argument("--videos", type=int, default=2, help="seeds per layout and similarity level")
    args = p.parse_args()
    root = pinned.root_from(pinned.VIDCOM2, args)
    theirs = pinned.import_file(
        pinned.VIDCOM2, root, "token_compressor/vidcom2/vidcom2.py", "vidcom2_authors"
    )
    result = {}
    for dtype in (torch.float32, torch.bfloat16):
        cases, same, ties, diff = 0, 0, 0, []
        for name, t, h, w in LAYOUTS:
            for seed in range(args.videos):
                for sim in ("mid", "high"):
                    x = video(t, h, w, CHANNELS, seed, sim).reshape(-1, CHANNELS).to(dtype)
                    for r in RATIOS:
                        cases += 1
                        out = theirs.vidcom2_compression(x, "qwen2_vl", r, frame_token_len=h * w)
                        ref = kept_rows(x, out)
                        ours = vidcom2_keep(x, (t, h, w), r)
                        if torch.equal(ref, ours):
                            same += 1
                        elif tie_only(theirs, x, h * w, ref, ours):
                            ties += 1
                        else:
                            diff.append(f"{name} seed {seed} {sim} r={r}: kept {int(ref.sum())} vs ours "
                                        f"{int(ours.sum())}, {int((ref ^ ours).sum())} tokens differ")  # fmt: skip
        result[str(dtype).removeprefix("torch.")] = {
            "cases": cases,
            "same_kept_set": same,
            "tie_only": ties,
            "different": diff,
        }
    pinned.emit(pinned.VIDCOM2, result)


if __name__ == "__main__":
    main()
