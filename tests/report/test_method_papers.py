"""The newer methods' published rows (``report/reference/method_papers.json``) as reference tables."""

from __future__ import annotations

import pytest

from lmms_sttm.report.method_papers import load, method_paper_table, method_paper_tables


def test_holitom_rows_give_the_printed_relative_accuracy():
    table, records = method_paper_table("holitom")
    assert "reference, not our runs" in table.title
    row = next(r for r in records if r["variant"] == "HoliTom" and r["retention"] == 10)
    # by hand: mean of 57.3/58.3, 61.2/60.4, 56.3/56.4, 56.8/58.6 (MVBench, EgoSchema, LVB, VideoMME)
    expected = 100 * (57.3 / 58.3 + 61.2 / 60.4 + 56.3 / 56.4 + 56.8 / 58.6) / 4
    assert row["r_acc_derived"] == pytest.approx(expected)
    assert round(row["r_acc_derived"], 1) == 99.1  # the paper's printed 99.1%
    own = [r for r in records if r["paper_model"] == "llava_onevision_7b"]
    assert len(own) == 9 and {r["frames"] for r in own} == {32}


def test_a_relative_only_row_shows_the_printed_value():
    table, records = method_paper_table("flashvid")
    assert records[0]["r_acc_printed"] == 99.1 and records[0]["r_acc_derived"] is None
    assert table.rows[0][-2] == "99.1 (printed)"


def test_only_methods_with_rows_get_a_table():
    assert [t.title.split()[0] for t, _ in method_paper_tables(["sttm", "holitom", "fastv"])] == ["holitom"]
    assert all(r["source"] for r in load()["rows"])


def test_vidcom2_relative_is_the_mean_over_its_seven_printed_columns():
    """VidCom2's Table 2 'Average (%)' counts VideoMME overall, short, medium and long separately: the
    derived R.Acc reproduces every printed average to its one decimal."""
    _, records = method_paper_table("vidcom2")
    row = next(r for r in records if r["paper_model"] == "llava_onevision_7b" and r["retention"] == 25)
    # by hand: MVBench, LVB, MLVU, VideoMME overall / short / medium / long against LLaVA-OV-7B's row
    pairs = [(57.2, 56.9), (54.9, 56.4), (62.5, 63.0), (58.6, 58.6), (69.8, 70.3), (56.4, 56.6), (49.4, 48.8)]
    assert row["r_acc_derived"] == pytest.approx(100 * sum(a / b for a, b in pairs) / 7)
    printed = [r for r in records if r["r_acc_printed"] is not None and r["variant"] == "VidCom2"]
    assert {(r["paper_model"], r["retention"]) for r in printed} == {
        ("llava_onevision_7b", 25),
        ("llava_onevision_7b", 15),
        ("llava_video_7b", 25),
        ("llava_video_7b", 15),
    }
    for r in printed:
        assert round(r["r_acc_derived"], 1) == r["r_acc_printed"], r
    assert {r["frames"] for r in records if r["paper_model"] == "llava_video_7b"} == {64}


def test_fastvid_rows_are_the_authors_logs_and_readme():
    _, records = method_paper_table("fastvid")
    own = {(r["paper_model"], r["retention"]): r for r in records if r["variant"] == "FastVID"}
    assert {k: v["acc_videomme"] for k, v in own.items()} == {
        ("llava_onevision_7b", 10): 57.3,
        ("llava_video_7b", 10): 60.7,
        ("qwen2_5_vl_7b", 27): 62.9,
    }
    # only the README's relative for LLaVA-OV; no unreduced row of their own to derive one from
    assert [k for k, v in own.items() if v["r_acc_printed"] is not None] == [("llava_onevision_7b", 10)]
    assert all(v["r_acc_derived"] is None for v in own.values())
    assert all(".log" in v["source"] for v in own.values())


def test_third_party_rows_are_labelled_and_relative_to_the_same_table():
    """FastVID and HoliTom on Qwen3-VL-8B come from the VidCom2 authors' table: their variant says
    so and their R.Acc is against that table's own unreduced row (the same in all three tables)."""
    fulls = {}
    for method in ("vidcom2", "fastvid", "holitom"):
        _, records = method_paper_table(method)
        q3 = [r for r in records if r["paper_model"] == "qwen3_vl_8b"]
        full = next(r for r in q3 if r["variant"] == "full")
        fulls[method] = tuple(full[f"acc_{b}"] for b in ("mvbench", "longvideobench", "mlvu", "videomme"))
        reduced = next(r for r in q3 if r["variant"] != "full")
        if method != "vidcom2":
            assert reduced["variant"].endswith("(VidCom2 authors' run)") and reduced["notes"]
        accs = [
            reduced[f"acc_{b}"] / full[f"acc_{b}"] for b in ("mvbench", "longvideobench", "mlvu", "videomme")
        ]
        assert reduced["r_acc_derived"] == pytest.approx(100 * sum(accs) / 4)
    assert len(set(fulls.values())) == 1 and fulls["vidcom2"] == (68.6, 60.3, 63.5, 64.5)


def test_evs_has_one_third_party_pair_and_says_why_no_more():
    data = load()
    table, records = method_paper_table("evs")
    reduced = next(r for r in records if r["variant"] != "full")
    assert reduced["variant"].endswith("(SGLang port's run)") and "prune rate 0.8" in reduced["notes"]
    assert (reduced["retention"], reduced["acc_videomme"]) == (20, 75.0)
    assert reduced["r_acc_derived"] == pytest.approx(100 * 75.0 / 78.1)  # by hand, Video-MME only
    assert "2510.14624" in data["without_rows"]["evs"] and "#20857" in reduced["source"]
    assert set(data["not_published_for_our_benchmarks"]) == {"evs", "vidcom2", "fastvid"}
