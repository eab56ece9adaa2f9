"""The bundled paper numbers: provenance, spot values from the paper, and the derived relatives."""

from __future__ import annotations

import csv
from collections import Counter

import pytest

from lmms_sttm.report import reference
from lmms_sttm.report.paper import paper_models_for, paper_rows

SOURCES = {
    "STTM paper Table 11",
    "STTM paper Table 12",
    "STTM paper Table 13",
    "STTM paper Table 14",
    "STTM paper Table 3",
    "STTM paper Table 4",
    "STTM paper Fig. 1",
}


def test_every_row_names_its_source_and_the_tables_are_complete():
    data = reference.load()
    rows = data["absolute"] + data["relative"]
    assert all(r["source"] in SOURCES for r in rows)
    counts = Counter(r["source"] for r in data["absolute"])
    # rows x (benchmarks + Avg): 13 x 7, 13 x 7, 7 x 4, 7 x 1
    assert counts == {
        "STTM paper Table 11": 91,
        "STTM paper Table 12": 91,
        "STTM paper Table 13": 28,
        "STTM paper Table 14": 7,
    }
    assert Counter(r["source"] for r in data["relative"]) == {
        "STTM paper Table 3": 24,
        "STTM paper Table 4": 6,
        "STTM paper Fig. 1": 12,
    }


def _cell(model, budget, method, bench):
    return next(
        r
        for r in reference.load()["absolute"]
        if (r["model"], r["budget"], r["method"], r["benchmark"]) == (model, budget, method, bench)
    )


def test_spot_values_match_the_paper():
    assert _cell("llava_video_7b", 50, "STTM", "vnbench") | {} == {
        "model": "llava_video_7b", "budget": 50, "method": "STTM", "benchmark": "vnbench",
        "acc": 77.4, "ttft_s": 0.455, "nv": 4804, "source": "STTM paper Table 11",
    }  # fmt: skip
    assert _cell("llava_video_7b", 100, "full", "avg")["nv"] == 18522
    assert _cell("llava_onevision_7b", 30, "STTM", "egoschema")["ttft_s"] == 0.570
    assert _cell("qwen2_vl_7b", 100, "full", "videomme")["nv"] == 74982
    assert _cell("llava_video_72b", 50, "STTM", "videomme")["acc"] == 71.4
    sic = _cell("llava_video_7b", 30, "FastV", "mlvu")
    assert sic["nv"] == 17562 and "sic" in sic["note"]


def test_printed_averages_are_means_of_the_printed_cells():
    """The Avg columns of Tables 11-13 are the means of the benchmark cells (a transcription check).

    The paper sometimes truncates instead of rounding (Qwen2-VL ToMe 30%: 57.67 printed as 57.6).
    """
    data = reference.load()
    groups: dict[tuple, dict] = {}
    for r in data["absolute"]:
        groups.setdefault((r["model"], r["budget"], r["method"]), {})[r["benchmark"]] = r
    for key, cells in groups.items():
        if key[0] == "llava_video_72b" or key == ("llava_video_7b", 30, "FastV"):
            continue  # one benchmark; the (sic) row's Avg does not follow from its cells
        benches = [c for b, c in cells.items() if b != "avg"]
        assert sum(c["acc"] for c in benches) / len(benches) == pytest.approx(cells["avg"]["acc"], abs=0.1), (
            key
        )
        assert sum(c["nv"] for c in benches) / len(benches) == pytest.approx(cells["avg"]["nv"], abs=1), key


@pytest.mark.parametrize(
    ("model", "budget", "method", "r_acc", "r_ttft"),
    [
        ("llava_video_7b", 50, "STTM", 99.5, 48.4),  # Fig. 1
        ("llava_video_7b", 30, "STTM", 97.8, 33.1),  # Fig. 1
        ("llava_video_7b", 50, "DyCoke", 97.5, 46.3),  # Fig. 1
        ("qwen2_vl_7b", 50, "STTM", 102.7, 39.2),  # Table 3, Avg
        ("qwen2_vl_7b", 30, "STTM", 100.5, 22.1),  # Table 3, Avg
        ("llava_video_72b", 50, "STTM", 101.3, 44.2),  # Table 4
    ],
)
def test_derived_relatives_reproduce_the_printed_ones(model, budget, method, r_acc, r_ttft):
    row = next(r for r in paper_rows(model) if (r.budget, r.method) == (budget, method))
    assert round(row.r_acc, 1) == r_acc == row.printed["r_acc"]
    assert round(row.r_ttft, 1) == r_ttft == row.printed["r_ttft"]


def test_paper_models_follow_model_and_checkpoint():
    assert paper_models_for("llava_video_sttm", "lmms-lab/LLaVA-Video-7B-Qwen2-Video-Only") == [
        "llava_video_7b"
    ]
    assert paper_models_for("llava_video_sttm", "lmms-lab/LLaVA-Video-72B-Qwen2") == ["llava_video_72b"]
    assert paper_models_for("qwen2_vl_sttm", "Qwen/Qwen2-VL-7B-Instruct") == ["qwen2_vl_7b"]
    assert paper_models_for("sttm_oracle", "x") == []


def test_reference_rows_are_separate_tables_and_never_in_our_relatives(built_report):
    out, files = built_report
    md = (out / "leaderboard.md").read_text()
    ours, paper = md.split("## Paper (reference)")
    assert "Table 11" not in ours and "77.4 / 0.455 / 4804" not in ours
    assert "### Paper (reference, not our runs): LLaVA-Video-7B (Video-Only)" in paper
    assert "| 50% | STTM | 77.4 / 0.455 / 4804 |" in paper
    assert "| 50% | ToMe |" in paper and "98.0 (printed 98.1)" in paper
    with (out / "leaderboard.csv").open() as f:
        assert [r["method"] for r in csv.DictReader(f)] == ["none", "sttm"]
    with files["paper_reference.csv"].open() as f:
        paper_csv = list(csv.DictReader(f))
    sttm50 = next(r for r in paper_csv if (r["budget"], r["method"]) == ("50", "STTM"))
    assert float(sttm50["acc_vnbench"]) == 77.4 and sttm50["r_acc_printed"] == "99.5"
    assert "Table 11" in sttm50["source"]


def test_inconsistent_qwen2_vl_tome_longvideobench_cells_are_marked():
    """Table 3 prints 101.4 / 41.9 and 99.5 / 26.3; Table 13's cells give 99.8 / 41.0 and 96.3 / 24.5."""
    from lmms_sttm.report.paper_tables import paper_table

    rows = {(r.budget, r.method): r for r in paper_rows("qwen2_vl_7b")}
    assert {k for k, r in rows.items() if r.disagree} == {(50, "ToMe"), (30, "ToMe")}
    for budget, printed, derived in ((50, (101.4, 41.9), (99.8, 41.0)), (30, (99.5, 26.3), (96.3, 24.5))):
        d = rows[(budget, "ToMe")].disagree
        assert set(d) == {"longvideobench"} and d["longvideobench"]["source"] == "STTM paper Table 3"
        got = d["longvideobench"]
        assert (got["printed"]["r_acc"], got["printed"]["r_ttft"]) == printed
        assert (round(got["derived"]["r_acc"], 1), round(got["derived"]["r_ttft"], 1)) == derived
    table, records = paper_table("qwen2_vl_7b")
    lvb = table.headers.index("LongVideoBench")
    cells = [c for row in table.rows for c in row if "in Table 3)" in c]
    assert cells == [
        "56.7 / 4.348 / 36054 (printed R.Acc / R.TTFT 101.4 / 41.9 in Table 3)",
        "54.7 / 2.600 / 21633 (printed R.Acc / R.TTFT 99.5 / 26.3 in Table 3)",
    ]
    assert [row[lvb] for row in table.rows if row[1] == "ToMe"] == cells
    assert any("prints R.Acc / R.TTFT 101.4 / 41.9, but the cells of STTM paper Table 13 give 99.8 / 41.0" in n
               for n in table.notes)  # fmt: skip
    tome30 = next(r for r in records if (r["budget"], r["method"]) == (30, "ToMe"))
    assert "96.3 / 24.5" in tome30["notes"]
    for model in ("llava_video_7b", "llava_video_72b", "llava_onevision_7b"):  # no other cell disagrees
        assert not [r for r in paper_rows(model) if r.disagree]
