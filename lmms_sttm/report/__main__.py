"""``python -m lmms_sttm.report RESULTS_DIR... --out DIR``: the leaderboard of lmms-eval runs.

Reads every ``*_results.json`` under the given directories (recursively) with its samples logs
and our ``sttm_stats`` files, and writes Markdown, CSV, an HTML page and PNG plots into
``--out``. Exit status 2 with a one-line message when the inputs cannot be used.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from lmms_sttm.report.build import PAPER_CHOICES, build_report
from lmms_sttm.report.errors import ReportError


def _metric(text: str) -> tuple[str, str | None]:
    task, sep, metric = text.partition("=")
    if not sep or not task:
        raise argparse.ArgumentTypeError(f"--metric wants TASK=METRIC (or TASK=none), got {text!r}")
    return task, None if metric.lower() in ("", "none") else metric


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lmms_sttm.report", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "dirs", nargs="+", metavar="RESULTS_DIR", help="lmms-eval --output_path dirs (searched recursively)"
    )
    p.add_argument("--out", required=True, help="directory for the report files (created)")
    p.add_argument(
        "--breakdowns", action="store_true", help="also write per-benchmark breakdowns (duration, task type)"
    )
    p.add_argument(
        "--paper", choices=PAPER_CHOICES, default="matched",
        help="paper reference tables: for the models in the runs (default), all, or none",
    )  # fmt: skip
    p.add_argument(
        "--metric", action="append", type=_metric, default=[], metavar="TASK=METRIC",
        help="read TASK's accuracy from METRIC instead of sttm_acc (repeatable)",
    )  # fmt: skip
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    command = "python -m lmms_sttm.report " + " ".join(shlex.quote(a) for a in argv)
    try:
        files = build_report(
            args.dirs,
            args.out,
            breakdowns=args.breakdowns,
            paper=args.paper,
            metric_overrides=dict(args.metric),
            command=command,
        )
    except ReportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for name, path in files.items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
