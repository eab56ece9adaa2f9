"""The paper's reference rows (``reference/paper_results.json``) arranged as tables per model.

Relative accuracy and TTFT of a paper row are derived exactly as for our runs: the mean over the
row's benchmarks of 100 * value / value of the ``full`` row. The printed averages (Fig. 1,
Tables 3 and 4) are kept beside them; R.NV is shown only where printed. A printed per-benchmark
relative (Tables 3 and 4) that its absolute cells do not reproduce within the rounding of the
printed values (:data:`TOLERANCE`) is kept in ``PaperRow.disagree``: the two Qwen2-VL ToMe
LongVideoBench cells, where Table 3 prints R.Acc / R.TTFT 101.4 / 41.9 (50%) and 99.5 / 26.3 (30%)
but Table 13's cells give 99.8 / 41.0 and 96.3 / 24.5.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lmms_sttm.report import reference
from lmms_sttm.report.measures import mean

#: percentage points by which a printed per-benchmark relative may differ from the one derived
#: from the printed (rounded) absolute cells; every other printed cell is within 0.2
TOLERANCE = 0.5

#: our model name -> the paper model keys it may be set beside (checked against ``pretrained``)
PAPER_MODELS = {
    "llava_video_sttm": ("llava_video_7b", "llava_video_72b"),
    "llava_onevision_sttm": ("llava_onevision_7b",),
    "qwen2_vl_sttm": ("qwen2_vl_7b",),
}


@dataclass
class PaperRow:
    """One (budget, method) line of a paper table."""

    model: str
    budget: int
    method: str
    cells: dict[str, tuple[float, float, int]] = field(default_factory=dict)
    avg: tuple[float, float, int] | None = None
    sources: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    r_acc: float | None = None
    r_ttft: float | None = None
    printed: dict[str, float] = field(default_factory=dict)
    printed_source: str | None = None
    disagree: dict[str, dict] = field(default_factory=dict)


def paper_models_for(model: str, pretrained: str) -> list[str]:
    """The paper models matching one of our rows (72B only for a 72B checkpoint)."""
    keys = PAPER_MODELS.get(model, ())
    big = "72b" in pretrained.lower()
    return [k for k in keys if ("72b" in k) == big]


def model_label(key: str) -> str:
    return reference.load()["models"][key]["label"]


def paper_rows(model: str) -> list[PaperRow]:
    """The paper's rows for one paper model key, in the printed order, with derived relatives."""
    data = reference.load()
    rows: dict[tuple, PaperRow] = {}
    for cell in data["absolute"]:
        if cell["model"] != model:
            continue
        row = rows.setdefault(
            (cell["budget"], cell["method"]), PaperRow(model, cell["budget"], cell["method"])
        )
        value = (cell["acc"], cell["ttft_s"], cell["nv"])
        if cell["benchmark"] == "avg":
            row.avg = value
        else:
            row.cells[cell["benchmark"]] = value
        row.sources.add(cell["source"])
        if cell.get("note"):
            row.notes.append(f"{cell['benchmark']}: {cell['note']}")
    full = next((r for r in rows.values() if r.method == "full"), None)
    for row in rows.values():
        if full is not None and row is not full:
            _derive(row, full)
    single = {b for r in rows.values() for b in r.cells}
    for cell in data["relative"]:
        row = rows.get((cell["budget"], cell["method"]))
        # a table with one benchmark (72B: VideoMME) prints that benchmark's relatives as the average
        is_avg = cell["benchmark"] == "avg" or (len(single) == 1 and cell["benchmark"] in single)
        if cell["model"] == model and row is not None and is_avg:
            row.printed = {k: cell[k] for k in ("r_acc", "r_ttft", "r_nv") if k in cell}
            row.printed_source = cell["source"]
            if cell.get("note"):
                row.notes.append(f"printed average: {cell['note']}")
        elif cell["model"] == model and row is not None and full is not None:
            _check_printed_cell(row, full, cell)
    return list(rows.values())


def _check_printed_cell(row: PaperRow, full: PaperRow, cell: dict) -> None:
    """Record a printed per-benchmark relative that the absolute cells do not reproduce."""
    b = cell["benchmark"]
    if b not in row.cells or b not in full.cells:
        return
    derived = {
        "r_acc": 100.0 * row.cells[b][0] / full.cells[b][0],
        "r_ttft": 100.0 * row.cells[b][1] / full.cells[b][1],
    }
    printed = {k: cell[k] for k in derived if k in cell}
    if any(abs(printed[k] - derived[k]) > TOLERANCE for k in printed):
        row.disagree[b] = {"printed": printed, "derived": derived, "source": cell["source"]}
        pair = " / ".join(f"{printed[k]:.1f}" for k in printed)
        mine = " / ".join(f"{derived[k]:.1f}" for k in printed)
        cells = ", ".join(sorted(row.sources))
        row.notes.append(
            f"{b}: {cell['source']} prints R.Acc / R.TTFT {pair}, but the cells of {cells} give {mine}"
            + (f" ({cell['note']})" if cell.get("note") else "")
        )


def _derive(row: PaperRow, full: PaperRow) -> None:
    benches = [b for b in row.cells if b in full.cells]
    row.r_acc = mean([100.0 * row.cells[b][0] / full.cells[b][0] for b in benches])
    row.r_ttft = mean([100.0 * row.cells[b][1] / full.cells[b][1] for b in benches])


def benchmarks_of(rows: list[PaperRow]) -> list[str]:
    """The benchmark keys a paper table has, in the paper's order."""
    order = ("vnbench", "videomme", "longvideobench", "mlvu", "egoschema", "nextqa")
    present = {b for r in rows for b in r.cells}
    return [b for b in order if b in present]
