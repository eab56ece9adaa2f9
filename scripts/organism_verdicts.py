"""Do training draws agree on the order of the methods? One JSON object per set of draws.

For each folder of draws' held-out runs (``DIR/seed_S/runs/<tag>``, as ``python -m lmms_sttm.organism
heldout`` writes them), over the run tags every folder has (or ``--tags``): per family (``all`` and
each family), how many pairs of runs keep one order on every draw by more than ``--margin`` points,
how many flip between draws, and each run's spread across the draws
(:func:`lmms_sttm.organism.draws.order_agreement`). Compares, e.g., the draws of the committed recipe
with draws trained with ``--merged-share``::

    .venv/bin/python scripts/organism_verdicts.py results/organism/draws results/organism/draws_merged --margin 2
"""

from __future__ import annotations

import argparse
import json
import sys

from lmms_sttm.organism.clips import FAMILIES
from lmms_sttm.organism.draws import ALL, collect, order_agreement


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("draws_dirs", nargs="+")
    p.add_argument("--tags", default=None, help="comma-separated run tags (default: those every folder has)")
    p.add_argument("--margin", type=float, default=2.0, help="points by which one run must lead on a draw")
    args = p.parse_args(argv)
    sets = {d: collect(d) for d in args.draws_dirs}
    empty = [d for d, per in sets.items() if not per]
    if empty:
        print(f"no draws' runs under {empty}", file=sys.stderr)
        return 1
    common = None
    for per in sets.values():
        for runs in per.values():
            common = set(runs) if common is None else common & set(runs)
    tags = args.tags.split(",") if args.tags else sorted(common)
    missing = sorted(set(tags) - common)
    if missing:
        print(f"runs missing on some draw: {missing}", file=sys.stderr)
        return 1
    out = {"tags": tags, "sets": {}}
    for d, per in sets.items():
        out["sets"][d] = {fam: order_agreement(per, tags, fam, args.margin) for fam in (ALL, *FAMILIES)}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
