"""Compare ``merge_video`` of the working tree with a git revision, interleaved in one process.

Timings on a shared CPU drift by 10-20% within minutes, so two separate benchmark runs cannot
resolve a change of a few percent. This script imports the revision's ``lmms_sttm/merging`` as a
second package (from ``git archive``), checks that both give the same plan and features, then alternates calls
in random order (each result dropped at once) and prints one JSON line per case: median wall and CPU milliseconds of each side
and the ratio working tree / revision.

Usage: ``.venv/bin/python scripts/bench_merge_ab.py REV [--frames 128] [--dtype float32] [--repeats 20]``.
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import random
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_merge import TAUS, synthetic_video  # noqa: E402

from lmms_sttm.merging.sttm import merge_video  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "lmms_sttm_ab_reference"


def revision_merging(rev: str, into: Path):
    """``rev``'s ``lmms_sttm/merging`` unpacked under ``into`` as package ``PACKAGE``; returns an importer
    ``name -> module`` (also used by ``bench_methods.py --ab``)."""
    blob = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "lmms_sttm/merging"], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(into, filter="data")
    package = into / PACKAGE
    (into / "lmms_sttm" / "merging").rename(package)
    for path in package.glob("*.py"):
        path.write_text(path.read_text().replace("lmms_sttm.merging", PACKAGE))
    sys.path.insert(0, str(into))
    return lambda name: importlib.import_module(f"{PACKAGE}.{name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="git revision to compare with (e.g. HEAD~1)")
    parser.add_argument("--frames", type=int, default=128)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per side and case")
    parser.add_argument("--channels", type=int, default=3584)
    args = parser.parse_args()
    x = synthetic_video(args.frames, 14, 14, args.channels, seed=args.frames + 14).to(
        getattr(torch, args.dtype)
    )
    with tempfile.TemporaryDirectory() as tmp:
        sides = {"tree": merge_video, "rev": revision_merging(args.rev, Path(tmp))("sttm").merge_video}
        for tau_s, tau_t in TAUS:
            plans = {name: fn(x, tau_s, tau_t) for name, fn in sides.items()}
            same = torch.equal(plans["tree"].token_map, plans["rev"].token_map)
            same_features = torch.equal(plans["tree"].features, plans["rev"].features)
            del plans
            for fn in sides.values():  # second warm-up call each
                fn(x, tau_s, tau_t)
            wall: dict[str, list[float]] = {name: [] for name in sides}
            cpu: dict[str, list[float]] = {name: [] for name in sides}
            for _ in range(args.repeats):
                for name in random.sample(list(sides), len(sides)):
                    c0, w0 = time.process_time(), time.perf_counter()
                    sides[name](x, tau_s, tau_t)
                    wall[name].append((time.perf_counter() - w0) * 1e3)
                    cpu[name].append((time.process_time() - c0) * 1e3)
            med = {name: statistics.median(v) for name, v in wall.items()}
            line = {
                "rev": args.rev,
                "T": args.frames,
                "dtype": args.dtype,
                "tau_s": tau_s,
                "tau_t": tau_t,
                "same_plan": same,
                "same_features": same_features,
                "tree_ms": round(med["tree"], 1),
                "rev_ms": round(med["rev"], 1),
                "tree_cpu_ms": round(statistics.median(cpu["tree"]), 1),
                "rev_cpu_ms": round(statistics.median(cpu["rev"]), 1),
                "ratio_tree_over_rev": round(med["tree"] / med["rev"], 3),
                "repeats": args.repeats,
            }
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
