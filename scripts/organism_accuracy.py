"""Per-family accuracy of an organism checkpoint on the held-out questions, through the model class.

The measurement behind ``tests/organism/test_accuracy.py``'s floors: ``--per-family`` held-out videos
per family x 4 tries, unreduced and at STTM exact 50% / 30% (:func:`lmms_sttm.organism.evaluate.answer_all`).
``--break-positions N`` shifts every position after the prefix (question and decoding) by ``N`` in the
engine (``engine.segments.continuation_positions``), the deliberate bug the test must catch. Prints JSON::

    .venv/bin/python scripts/organism_accuracy.py [--checkpoint lmms_sttm/organism/weights] [--break-positions 300]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile

RUNS = {
    "unreduced": {"method": "none"},
    "sttm_exact50": {"method": "sttm", "budget_mode": "exact", "retention": 0.5},
    "sttm_exact30": {"method": "sttm", "budget_mode": "exact", "retention": 0.3},
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="lmms_sttm/organism/weights")
    p.add_argument("--per-family", type=int, default=8)
    p.add_argument("--break-positions", type=int, default=0, help="shift of every position after the prefix")
    p.add_argument("--data-root", default="work_dirs/organism_accuracy")
    args = p.parse_args(argv)
    if args.break_positions:
        import lmms_sttm.engine.segments as segments

        real = segments.continuation_positions
        segments.continuation_positions = lambda nxt, q: real(nxt, q) + args.break_positions
    from lmms_sttm.organism.evaluate import accuracy_by_family, answer_all

    out = {
        "checkpoint": args.checkpoint,
        "per_family": args.per_family,
        "break_positions": args.break_positions,
    }
    for name, model_args in RUNS.items():
        with tempfile.TemporaryDirectory() as stats:
            answers, _ = answer_all(args.checkpoint, args.data_root, args.per_family, stats, **model_args)
        out[name] = {k: round(v, 1) for k, v in accuracy_by_family(answers).items()}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
