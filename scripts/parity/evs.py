"""EVS against vLLM's ``compute_retention_mask`` (``vllm/multimodal/evs.py``) on synthetic videos.

Per video (:mod:`videos`: every layout x ``--videos`` seeds x the similarity levels mid and high)
and pruning rate (0.5 and 0.7: ``budget=50|30``; 0.75 and 0.9, vLLM's usual values), in float32 and
bfloat16: the same kept set (``lmms_sttm.merging.evs.evs_keep`` against vLLM's mask, called with
``spatial_merge_size=1`` on the LLM grid, as vLLM calls it after the merger). Prints JSON.

    .venv/bin/python scripts/parity/evs.py --authors-dir DIR [--videos 2]
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pinned  # noqa: E402
from videos import LAYOUTS, video  # noqa: E402

from lmms_sttm.merging.evs import evs_keep  # noqa: E402

RATES = (0.5, 0.7, 0.75, 0.9)
CHANNELS = 64


def main() -> None:
    p = pinned.parser(pinned.VLLM, __doc__.splitlines()[0])
    p.add_argument("--videos", type=int, default=2, help="seeds per layout and similarity level")
    args = p.parse_args()
    root = pinned.root_from(pinned.VLLM, args)
    theirs = pinned.import_file(pinned.VLLM, root, "vllm/multimodal/evs.py", "vllm_evs")
    cases, same, diff = 0, 0, []
    for name, t, h, w in LAYOUTS:
        for seed in range(args.videos):
            for sim in ("mid", "high"):
                grid = video(t, h, w, CHANNELS, seed, sim).reshape(-1, CHANNELS)
                for dtype in (torch.float32, torch.bfloat16):
                    x = grid.to(dtype)
                    for q in RATES:
                        cases += 1
                        ref = theirs.compute_retention_mask(x, (t, h, w), 1, q)
                        ours = evs_keep(x, (t, h, w), q)
                        if torch.equal(ref, ours):
                            same += 1
                        else:
                            sym = int((ref ^ ours).sum())
                            diff.append(f"{name} seed {seed} {sim} {dtype} q={q}: {sym} tokens differ")
    pinned.emit(pinned.VLLM, {"cases": cases, "same_kept_set": same, "different": diff})


if __name__ == "__main__":
    main()
