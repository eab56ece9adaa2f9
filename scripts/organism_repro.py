"""Does a short organism training reproduce itself? Prints JSON: phase fingerprints and per-step losses.

Runs :func:`lmms_sttm.organism.train.train` for a few steps (the lookup phase is 4x the steps, up to
600) on a small clip bank into a temporary folder, logging every step, and prints one JSON object:
the command's settings, the kernel class, the phase fingerprints (initial weights, weights after the
lookup phase, clip bank, final weights) and every logged loss in full precision (``float.hex``).
Run it twice with different settings (``--threads``, the environment variables of
:data:`lmms_sttm.organism.numerics.KERNEL_ENV`) and compare with ``--against`` to find the first
phase and step that differ::

    .venv/bin/python scripts/organism_repro.py --steps 30 --bank 48 --threads 2 > a.json
    ATEN_CPU_CAPABILITY=avx2 .venv/bin/python scripts/organism_repro.py ... --against a.json
    .venv/bin/python scripts/organism_repro.py --compare a.json b.json
    .venv/bin/python scripts/organism_repro.py --compare DRAW/training.json RERUN/training.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from pathlib import Path


def compare(a: dict, b: dict) -> dict:
    """The first differing phase fingerprint and logged step of two reports, and the largest loss gap."""
    phases = [
        k for k in ("init", "after_lookup", "bank", "final") if a["fingerprints"][k] != b["fingerprints"][k]
    ]
    steps = [(x, y) for x, y in zip(a["losses"], b["losses"], strict=False) if x["key"] == y["key"]]
    differ = [
        (x["key"], float.fromhex(x["loss"]), float.fromhex(y["loss"]))
        for x, y in steps
        if x["loss"] != y["loss"]
    ]
    return {
        "phases_differing": phases,
        "first_differing_step": differ[0][0] if differ else None,
        "steps_compared": len(steps),
        "steps_differing": len(differ),
        "max_abs_loss_gap": max((abs(u - v) for _, u, v in differ), default=0.0),
        "last_losses": [
            steps[-1][0]["key"],
            float.fromhex(steps[-1][0]["loss"]),
            float.fromhex(steps[-1][1]["loss"]),
        ]
        if steps
        else None,
    }


def load(path: Path) -> dict:
    """A report written by this script (anything printed before its JSON object is skipped), or a
    training's ``training.json``, whose logged history (losses rounded to 4 decimals, as recorded)
    stands in for the full-precision losses."""
    text = path.read_text()
    report = json.loads(text[text.index("\n{") + 1 :] if not text.startswith("{") else text)
    if "losses" not in report and "history" in report:
        report["losses"] = [
            {"key": ["lookup", h["lookup_step"]] if "lookup_step" in h else ["video", h["step"]],
             "loss": float(h["loss"]).hex()}
            for h in report["history"]
        ]  # fmt: skip
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--bank", type=int, default=48)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--against", type=Path, help="an earlier report to compare with")
    p.add_argument("--compare", type=Path, nargs=2, metavar="REPORT", help="only compare two reports")
    args = p.parse_args(argv)
    if args.compare:
        print(json.dumps(compare(*(load(x) for x in args.compare)), indent=1))
        return 0
    import lmms_sttm.organism.train as train_mod

    losses = []
    real_round = round

    def exact_round(x, n=None):  # the history's rounding, spied on to keep every loss exactly
        return real_round(x, n) if n is None or not isinstance(x, float) else x

    train_mod.round = exact_round  # the module's own ``round`` (history entries) only
    try:
        with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(sys.stderr):
            facts = train_mod.train(Path(tmp) / "m", args.steps, seed=args.seed, log_every=1, threads=args.threads,
                                    save_every=0, bank=args.bank)  # fmt: skip
    finally:
        del train_mod.round
    for h in facts["history"]:
        key = f"lookup{h['lookup_step']}" if "lookup_step" in h else f"step{h['step']}"
        losses.append({"key": key, "loss": float(h["loss"]).hex()})
    report = {
        "settings": vars(args) | {"against": str(args.against) if args.against else None},
        "environment": facts["environment"],
        "fingerprints": facts["fingerprints"],
        "losses": losses,
    }
    if args.against:
        report["comparison"] = compare(load(args.against), report)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
