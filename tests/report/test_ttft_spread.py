"""R.TTFT's spread: paired cold prefills of a run and its unreduced run, from statistics files."""

from __future__ import annotations

import json
import statistics

from lmms_sttm.report.ttft_spread import spread


def _write(directory, rows, rank=0):
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / f"llava_video_sttm_rank{rank}.jsonl").open("a") as f:
        for i, r in enumerate(rows):
            base = {"model": "llava_video_sttm", "task": "vnbench_sttm", "error": None, "time": float(i)}
            f.write(json.dumps({**base, **r}) + "\n")


def test_spread_pairs_the_questions_both_runs_prefilled(tmp_path):
    ref_ms = [50.0, 52.0, 48.0, 60.0, 51.0]
    row_ms = [30.0, 36.0, 31.0, 45.0, 29.0]
    ref, row = tmp_path / "none", tmp_path / "sttm"
    _write(
        ref,
        [
            {"doc_id": d, "prefill_ms": v, "prefix_reused": False, "vision_ms": 10.0}
            for d, v in enumerate(ref_ms)
        ],
    )
    _write(ref, [{"doc_id": 9, "prefill_ms": 500.0, "prefix_reused": False}], rank=1)  # not in the row
    rows = [
        {"doc_id": d, "prefill_ms": v, "prefix_reused": False, "merge_ms": d + 1.0, "vision_ms": 12.0 + d}
        for d, v in enumerate(row_ms)
    ]
    rows += [{"doc_id": 20, "prefill_ms": 3.0, "prefix_reused": True}]  # reused prefix: not a TTFT
    rows += [{"doc_id": 21, "error": "boom"}]
    _write(row, rows)
    sp = spread(row, ref)
    assert sp.questions == 5
    assert abs(sp.ratio_of_means - 100 * sum(row_ms) / sum(ref_ms)) < 1e-9
    assert abs(sp.ratio_of_medians - 100 * statistics.median(row_ms) / statistics.median(ref_ms)) < 1e-9
    ratios = sorted(100 * a / b for a, b in zip(row_ms, ref_ms, strict=True))
    assert ratios[0] <= sp.low <= sp.ratio_of_means <= sp.high <= ratios[-1] and sp.low < sp.high
    assert sp.median_merge_ms == 3.0 and sp.reference_median_ms == 51.0
    assert abs(sp.vision_ratio - 140.0) < 1e-9  # medians 14 / 10: the row ran on a slower machine
    assert spread(row, ref) == sp  # seeded


def test_spread_is_none_without_paired_questions(tmp_path):
    _write(tmp_path / "a", [{"doc_id": 1, "prefill_ms": 5.0, "prefix_reused": False}])
    _write(tmp_path / "b", [{"doc_id": 2, "prefill_ms": 5.0, "prefix_reused": False}])
    assert spread(tmp_path / "a", tmp_path / "b") is None
