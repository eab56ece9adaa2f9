"""``python -m lmms_sttm.organism train --out DIR [--steps N] [--seed S]``: train the model organism."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DEFAULT_STEPS = 650  # the committed weights (lmms_sttm/organism/weights/training.json)
#: the kernel class training pins (set before torch loads, unless the caller set them): torch's own
#: kernels, MKL's and oneDNN's AVX2 code paths, which every x86-64 CPU of the last decade runs, so that
#: an AVX-512 machine computes what an AVX2-only one does (each library picks its widest path otherwise)
KERNEL_PINS = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lmms_sttm.organism", description=__doc__.split(":")[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train the organism into a new LLaVA-NeXT-format checkpoint folder")
    t.add_argument("--out", required=True, type=Path)
    t.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--bank", type=int, default=None, help="training clips encoded once (default: train.BANK)")
    t.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = p.parse_args(argv)
    if "torch" not in sys.modules:  # too late once torch has loaded (tests call main() in process)
        for key, value in KERNEL_PINS.items():
            os.environ.setdefault(key, value)
    from lmms_sttm.organism.train import BANK, train

    bank = args.bank or BANK
    facts = train(args.out, args.steps, seed=args.seed, threads=args.threads, bank=bank)
    print(f"[organism] trained {facts['steps']} steps in {facts['seconds']} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
