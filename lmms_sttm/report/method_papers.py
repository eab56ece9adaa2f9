"""The published results of the newer methods, from their own papers (``reference/method_papers.json``).

One table per method that our runs contain, titled "reference, not our runs": each printed
(variant, model, frames, retention) row with its benchmarks' accuracies, the printed average,
and R.Acc derived as for our runs (mean over the row's benchmarks of 100 * acc / the same paper's
``full`` row), or the printed relative where the paper gives only that.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

from lmms_sttm.report.measures import mean
from lmms_sttm.report.table import MISSING, Table, num

FILE = "method_papers.json"


@lru_cache(maxsize=1)
def load() -> dict:
    """The parsed reference file (cached; do not modify the result)."""
    text = resources.files("lmms_sttm.report.reference").joinpath(FILE).read_text(encoding="utf-8")
    return json.loads(text)


def method_paper_table(method: str) -> tuple[Table, list[dict]] | None:
    """The display table and CSV records of ``method``'s published rows (None: none bundled)."""
    data = load()
    cells = [r for r in data["rows"] if r["method"] == method]
    if not cells:
        return None
    benches = [b for b in data["benchmarks"] if any(c["benchmark"] == b for c in cells)]
    lines: dict[tuple, dict] = {}
    for c in cells:
        key = (c["variant"], c["model"], c["frames"], c["retention"])
        line = lines.setdefault(key, {"cells": {}, "sources": set(), "notes": []})
        line["cells"][c["benchmark"]] = c
        line["sources"].add(c["source"])
        if c.get("note"):
            line["notes"].append(c["note"])
    table = Table(
        f"{method} paper (reference, not our runs)",
        [
            "Variant",
            "Model",
            "Frames",
            "Retention",
            *[data["benchmarks"][b] for b in benches],
            "Avg",
            "R.Acc",
            "Source",
        ],
        intro="Accuracy (%) as printed by the method's authors (their hardware, frames and protocol).",
    )
    records = []
    for (variant, model, frames, retention), line in lines.items():
        full = lines.get(("full", model, frames, 100))
        r_acc = _relative(line["cells"], None if full is None else full["cells"], benches)
        printed = line["cells"].get("avg", {}).get("r_acc")
        accs = {b: line["cells"].get(b, {}).get("acc") for b in [*benches, "avg"]}
        table.rows.append(
            [
                variant,
                data["models"][model]["label"],
                str(frames),
                f"{retention}%",
                *[num(accs[b]) for b in benches],
                num(accs["avg"]),
                num(r_acc if r_acc is not None else printed)
                + (" (printed)" if r_acc is None and printed else ""),
                "; ".join(sorted(line["sources"])),
            ]  # fmt: skip
        )
        records.append({"method": method, "variant": variant, "paper_model": model, "frames": frames,
                        "retention": retention, **{f"acc_{b}": accs[b] for b in accs},
                        "r_acc_derived": r_acc, "r_acc_printed": printed,
                        "source": "; ".join(sorted(line["sources"])), "notes": "; ".join(line["notes"])})  # fmt: skip
    table.notes = sorted({f"{v} {r}%: {n}" for (v, _, _, r), line in lines.items() for n in line["notes"]})
    return table, records


def _relative(cells: dict, full: dict | None, benches: list[str]) -> float | None:
    if full is None or "full" in {c.get("variant") for c in cells.values()}:
        return None
    shared = [b for b in benches if b in cells and b in full and "acc" in cells[b]]
    return mean([100.0 * cells[b]["acc"] / full[b]["acc"] for b in shared]) if shared else None


def method_paper_tables(methods) -> list[tuple[Table, list[dict]]]:
    """The tables of the ``methods`` (e.g. those of our runs) that have bundled published rows."""
    return [t for t in (method_paper_table(m) for m in sorted(set(methods))) if t is not None]


__all__ = ["MISSING", "load", "method_paper_table", "method_paper_tables"]
