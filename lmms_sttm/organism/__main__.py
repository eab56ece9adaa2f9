"""``python -m lmms_sttm.organism train|draws|heldout|spread``: train the model organism, several draws of it, their spread.

- ``train --out DIR [--steps N] [--seed S] [--threads T] [--stop-after K]``: one organism (a LLaVA-NeXT
  checkpoint folder). Resumable: rerun the same command (without ``--stop-after``) after a stop or a
  kill and it continues from the last saved step (every 25 video steps) to the same weights.
- ``draws --out DIR --seeds 0 1 2 [--jobs J] [train options]``: one ``train`` per seed into
  ``DIR/seed_S`` (each in its own process, ``J`` at a time), the same command otherwise.
- ``heldout --seeds 0 1 2 [--checkpoints DIR] [--out DIR] [--per-family N] [--runs TAGS] [--spread-out DIR]``: the held-out
  evaluation of each draw for every demo row (:mod:`lmms_sttm.organism.heldout`), then the spread.
- ``spread DRAWS_DIR --out DIR``: the held-out accuracy of every draw evaluated under
  ``DRAWS_DIR/seed_S`` (``python -m lmms_sttm.demo --checkpoint DRAW --out DRAWS_DIR/seed_S``), their
  mean and min-max per run and family, into ``DIR/draws.csv`` and ``DIR/draws.md``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

DEFAULT_STEPS = 650  # the committed weights (lmms_sttm/organism/weights/training.json)
#: the kernel class training pins (set before torch loads, unless the caller set them): torch's own
#: kernels, MKL's and oneDNN's AVX2 code paths, which every x86-64 CPU of the last decade runs, so that
#: an AVX-512 machine computes what an AVX2-only one does (each library picks its widest path otherwise)
KERNEL_PINS = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
DEFAULT_THREADS = 1  # one thread: no reduction is split across threads, whatever the machine's cores


def _train_options(t: argparse.ArgumentParser) -> None:
    t.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    t.add_argument("--bank", type=int, default=None, help="training clips encoded once (default: train.BANK)")
    t.add_argument(
        "--stop-after",
        type=int,
        default=None,
        help="stop after this video step, resumable: the same command without it continues (same weights)",
    )
    t.add_argument(
        "--threads", type=int, default=DEFAULT_THREADS, help="torch CPU threads (part of the recipe)"
    )
    t.add_argument(
        "--merged-share",
        type=float,
        default=0.0,
        help="share of the reduced steps that see STTM-merged tokens instead of a thinned subset (default 0)",
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lmms_sttm.organism", description=__doc__.split(":")[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train the organism into a new LLaVA-NeXT-format checkpoint folder")
    t.add_argument("--out", required=True, type=Path)
    t.add_argument("--seed", type=int, default=0)
    _train_options(t)
    d = sub.add_parser("draws", help="train one organism per seed into OUT/seed_S")
    d.add_argument("--out", required=True, type=Path)
    d.add_argument("--seeds", type=int, nargs="+", required=True)
    d.add_argument("--jobs", type=int, default=1, help="draws trained at once (separate processes)")
    _train_options(d)
    h = sub.add_parser(
        "heldout", help="held-out evaluation of several draws, every demo row, then the spread"
    )
    h.add_argument("--seeds", type=int, nargs="+", required=True)
    h.add_argument("--checkpoints", default=None, help="folder of the draws' seed_S checkpoints")
    h.add_argument("--out", default=None, help="folder of the draws' seed_S/runs/<tag>")
    h.add_argument("--per-family", type=int, default=50)
    h.add_argument("--runs", default="all", help="comma-separated demo run tags (default: all)")
    h.add_argument("--processes", type=int, default=2)
    h.add_argument("--spread-out", default="results/organism", help="folder for draws.csv / draws.md")
    s = sub.add_parser("spread", help="summarise the held-out evaluations of several draws")
    s.add_argument("draws_dir", type=Path)
    s.add_argument("--out", required=True, type=Path)
    args = p.parse_args(argv)
    if args.command == "spread":
        from lmms_sttm.organism.draws import write_summary

        summary = write_summary(args.draws_dir, args.out)
        if summary is None:
            print(f"[organism] no draws' runs under {args.draws_dir} (seed_S/runs/<tag>)", file=sys.stderr)
            return 1
        print(f"[organism] {summary}")
        return 0
    if args.command == "heldout":
        from lmms_sttm.organism import heldout

        tags = None if args.runs == "all" else args.runs.split(",")
        return heldout.evaluate(args.seeds, args.checkpoints or heldout.CHECKPOINTS, args.out or heldout.OUT,
                                args.per_family, tags, args.processes, spread_out=args.spread_out)  # fmt: skip
    if not 0 <= args.merged_share <= 1:
        print(f"[organism] --merged-share must be in [0, 1], got {args.merged_share}", file=sys.stderr)
        return 2
    if args.command == "draws":
        return train_draws(args)
    if "torch" not in sys.modules:  # too late once torch has loaded (tests call main() in process)
        for key, value in KERNEL_PINS.items():
            os.environ.setdefault(key, value)
    from lmms_sttm.organism.train import BANK, train

    bank = args.bank or BANK
    facts = train(args.out, args.steps, seed=args.seed, threads=args.threads, bank=bank,
                  stop_after=args.stop_after, merged_share=args.merged_share)  # fmt: skip
    if "stopped_at" in facts:
        print(
            f"[organism] stopped after {facts['stopped_at']} video steps ({facts['seconds']} s) -> {args.out}"
        )
        return 0
    print(f"[organism] trained {facts['steps']} steps in {facts['seconds']} s -> {args.out}")
    return 0


def train_draws(args) -> int:
    """One ``train`` process per seed, ``args.jobs`` at a time; each logs to ``OUT/seed_S.log``."""
    args.out.mkdir(parents=True, exist_ok=True)
    pending, running, failed = list(args.seeds), [], []
    while pending or running:
        while pending and len(running) < max(1, args.jobs):
            seed = pending.pop(0)
            cmd = [sys.executable, "-m", "lmms_sttm.organism", "train", "--out", str(args.out / f"seed_{seed}"),
                   "--seed", str(seed), "--steps", str(args.steps), "--threads", str(args.threads)]  # fmt: skip
            if args.bank:
                cmd += ["--bank", str(args.bank)]
            if args.stop_after:
                cmd += ["--stop-after", str(args.stop_after)]
            if args.merged_share:
                cmd += ["--merged-share", str(args.merged_share)]
            log = open(args.out / f"seed_{seed}.log", "w")  # noqa: SIM115 (closed when the process ends)
            running.append((seed, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log))
            print(f"[organism] draw seed {seed}: {' '.join(cmd[1:])}", flush=True)
        seed, proc, log = running.pop(0)
        if proc.wait() != 0:
            failed.append(seed)
        log.close()
        print(f"[organism] draw seed {seed} {'FAILED' if proc.returncode else 'done'}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
