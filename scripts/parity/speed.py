"""STTM merging speed: the authors' ``quadtree_build_video`` against ``merge_video``, interleaved.

Both run on the same seeded feature grids (LLaVA-Video-7B's layout at its merge layer: 64 frames x
13 x 13 tokens x 3584 channels by default; ``--frames/--height/--width/--channels`` change it),
in ``--dtype`` (float32 on CPU), with the paper's thresholds for each budget (LLaVA-Video-7B: 50%
tau_s=0.8, tau_t=0.6 ... see THRESHOLDS), one intra-op thread unless ``--threads``. Calls alternate
between the two implementations so that a shared machine's drift hits both alike; the result is
the median CPU time (process time) of each and their ratio, per threshold pair. Prints JSON.

    .venv/bin/python scripts/parity/speed.py --authors-dir DIR [--repeats 7]
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import authors  # noqa: E402
from sttm_merge import NEEDS  # noqa: E402
from videos import video  # noqa: E402

from lmms_sttm.merging.sttm import merge_video  # noqa: E402

#: (label, tau_s, tau_t): a mild and a strong merge around the paper's LLaVA-Video settings
THRESHOLDS = (("tau 0.9/0.8", 0.9, 0.8), ("tau 0.8/0.6", 0.8, 0.6))


def cpu_seconds(fn, *args, **kwargs) -> float:
    """CPU (process) seconds of one call ``fn(*args, **kwargs)``."""
    start = time.process_time()
    fn(*args, **kwargs)
    return time.process_time() - start


def main(argv=None) -> int:
    p = authors.parser(__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=64)
    p.add_argument("--height", type=int, default=13)
    p.add_argument("--width", type=int, default=13)
    p.add_argument("--channels", type=int, default=3584)
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    builder = authors.import_module(authors.root_from(args), "token_merging_utils.quadtree_builder", NEEDS)
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    x = video(args.frames, args.height, args.width, args.channels, seed=0, similarity="mid").to(dtype)
    theirs_in = x.permute(0, 3, 1, 2).contiguous()
    rows = []
    for label, tau_s, tau_t in THRESHOLDS:
        kept = merge_video(x, tau_s, tau_t).num_kept  # warm-up of both, outside the timing
        builder.quadtree_build_video(theirs_in, tau_s, tau_t, root_level=1)
        ours, theirs = [], []
        for _ in range(args.repeats):
            theirs.append(cpu_seconds(builder.quadtree_build_video, theirs_in, tau_s, tau_t, root_level=1))
            ours.append(cpu_seconds(merge_video, x, tau_s, tau_t))
        rows.append(
            {
                "thresholds": label,
                "kept_tokens": kept,
                "authors_ms": round(1000 * statistics.median(theirs), 2),
                "ours_ms": round(1000 * statistics.median(ours), 2),
                "speedup": round(statistics.median(theirs) / statistics.median(ours), 2),
            }
        )
    grid = f"{args.frames}x{args.height}x{args.width}x{args.channels} {args.dtype}"
    authors.emit(
        {"driver": "speed", "grid": grid, "threads": args.threads, "repeats": args.repeats, "rows": rows}
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
