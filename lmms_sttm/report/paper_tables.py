"""The paper's reference tables, one per paper model, kept apart from our runs.

Each table is titled "Paper (reference)"; its relative columns are derived from the paper's own
absolute cells (never from our runs), with the printed averages shown where they differ.
"""

from __future__ import annotations

from lmms_sttm.report.benchmarks import PAPER_LABELS
from lmms_sttm.report.paper import PaperRow, benchmarks_of, model_label, paper_rows
from lmms_sttm.report.table import MISSING, Table, num


def _triple(v: tuple[float, float, int] | None) -> str:
    return MISSING if v is None else f"{v[0]:.1f} / {v[1]:.3f} / {v[2]}"


def _cell(r: PaperRow, b: str) -> str:
    """Acc / TTFT / NV, marked when another table prints relatives these cells do not give."""
    text = _triple(r.cells.get(b))
    other = r.disagree.get(b)
    if other is not None:
        pair = " / ".join(f"{v:.1f}" for v in other["printed"].values())
        text += f" (printed R.Acc / R.TTFT {pair} in {other['source'].removeprefix('STTM paper ')})"
    return text


def _relative(derived: float | None, printed: float | None) -> str:
    if derived is None:
        return num(printed)
    text = num(derived)
    if printed is not None and f"{printed:.1f}" != text:
        text += f" (printed {printed:.1f})"
    return text


def paper_table(model: str) -> tuple[Table, list[dict]]:
    """The display table and CSV records of one paper model."""
    rows = paper_rows(model)
    benches = benchmarks_of(rows)
    sources = sorted({s for r in rows for s in r.sources})
    table = Table(
        f"Paper (reference, not our runs): {model_label(model)}",
        ["Budget", "Method", *[PAPER_LABELS[b] for b in benches], "Avg", "R.Acc", "R.TTFT", "R.NV", "Source"],
        intro=f"Acc / TTFT (s) / NV as printed in {', '.join(sources)}; hardware and protocol of the paper.",
    )
    records = []
    for r in rows:
        table.rows.append(
            [
                f"{r.budget}%",
                r.method,
                *[_cell(r, b) for b in benches],
                _triple(r.avg),
                _relative(r.r_acc, r.printed.get("r_acc")),
                _relative(r.r_ttft, r.printed.get("r_ttft")),
                num(r.printed.get("r_nv")),
                _source(r),
            ]  # fmt: skip
        )
        records.append(_record(r, benches))
    table.notes = [
        "R.Acc / R.TTFT derived from the absolute cells as for our runs (mean over benchmarks of the ratio to "
        "'full'); '(printed x)' is the paper's own average where it differs. R.NV only where printed. A "
        "cell marked '(printed R.Acc / R.TTFT a / b in Table n)': that table's relatives for it disagree "
        "with these absolute cells (see the notes).",
        *sorted({f"{r.budget}% {r.method}: {n}" for r in rows for n in r.notes}),
    ]
    return table, records


def _source(r: PaperRow) -> str:
    text = ", ".join(sorted(r.sources))
    return text + (f"; printed relatives: {r.printed_source}" if r.printed_source else "")


def _record(r: PaperRow, benches: list[str]) -> dict:
    rec = {"paper_model": r.model, "budget": r.budget, "method": r.method}
    for b in benches:
        acc, ttft, nv = r.cells.get(b, (None, None, None))
        rec.update({f"acc_{b}": acc, f"ttft_s_{b}": ttft, f"nv_{b}": nv})
    acc, ttft, nv = r.avg or (None, None, None)
    rec.update(avg_acc=acc, avg_ttft_s=ttft, avg_nv=nv, r_acc_derived=r.r_acc, r_ttft_derived=r.r_ttft)
    rec.update({f"{k}_printed": r.printed.get(k) for k in ("r_acc", "r_ttft", "r_nv")})
    rec.update(source=_source(r), notes="; ".join(r.notes))
    return rec
