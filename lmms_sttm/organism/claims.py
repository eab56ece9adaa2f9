"""Which of the demo's method orders hold: beyond each row's interval and across training draws.

The demo evaluates one organism (one training draw) on a few videos. A statement "row X scores
above row Y" is made only when (:func:`order_holds`) X's 95% interval lies wholly above Y's in
the demo run, and on the committed held-out evaluation of every training draw X scores above Y by
more than the spread: the lowest draw of X above the highest draw of Y
(:mod:`lmms_sttm.organism.draws`). Anything else is within the noise of one draw or of a
12-video sample.

Claims are written by :func:`claim_text` (```X` scores above `Y```, X and Y the demo's run tags),
so that :func:`claimed_orders` reads them back from the committed text for the test that checks
them against the committed numbers.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from lmms_sttm.organism.draws import ALL
from lmms_sttm.report.model_args import parse_model_args, setting_label, setting_of

CLAIM = re.compile(r"`(\w+)` scores above `(\w+)`")


@dataclass(frozen=True)
class RowNumbers:
    """One demo row: its accuracy and 95% interval in the demo run, and its held-out accuracy per
    training draw (``{seed: acc}``, empty when the draws did not evaluate the row)."""

    tag: str
    acc: float
    low: float
    high: float
    draws: dict


def row_key(model_args: str) -> tuple[str, str]:
    """``(method, setting label)`` of a demo run, as the leaderboard's ``method`` and ``setting`` columns."""
    args = parse_model_args(model_args)
    return args.get("method", "sttm"), setting_label(setting_of(args))


def row_numbers(runs: list[tuple[str, str]], leaderboard_csv: Path, spread: dict) -> dict[str, RowNumbers]:
    """``{tag: RowNumbers}`` for the demo ``runs`` (``(tag, model_args)``) found in ``leaderboard_csv``;
    ``spread``: :func:`lmms_sttm.organism.draws.read_spread` (or ``{}``)."""
    with Path(leaderboard_csv).open(newline="") as f:
        board = {(r["method"], r["setting"]): r for r in csv.DictReader(f)}
    out = {}
    for tag, args in runs:
        r = board.get(row_key(args))
        if r is None or r["avg_acc"] in ("", None):
            continue
        acc = float(r["avg_acc"])
        low = float(r["avg_acc_ci95_low"]) if r.get("avg_acc_ci95_low") else acc
        high = float(r["avg_acc_ci95_high"]) if r.get("avg_acc_ci95_high") else acc
        draws = spread.get((tag, ALL), {}).get("draws", {})
        out[tag] = RowNumbers(tag, acc, low, high, dict(draws))
    return out


def order_holds(x: RowNumbers, y: RowNumbers) -> bool:
    """True when ``x`` scores above ``y`` beyond the demo run's intervals (x's 95% interval wholly
    above y's) and beyond the spread across training draws (both evaluated on the same draws, x's
    lowest draw above y's highest)."""
    if not (x.low > y.high):
        return False
    if not x.draws or set(x.draws) != set(y.draws):
        return False
    return min(x.draws.values()) > max(y.draws.values())


def holding_orders(rows: list[RowNumbers]) -> list[tuple[str, str]]:
    """Every ``(x, y)`` of ``rows`` with :func:`order_holds`, x by decreasing demo accuracy, then y."""
    ranked = sorted(rows, key=lambda r: (-r.acc, r.tag))
    return [(x.tag, y.tag) for x in ranked for y in ranked if x is not y and order_holds(x, y)]


def claim_text(x: str, y: str) -> str:
    return f"`{x}` scores above `{y}`"


def claimed_orders(text: str) -> list[tuple[str, str]]:
    """The ``(x, y)`` pairs that ``text`` claims (:func:`claim_text`)."""
    return CLAIM.findall(text)
