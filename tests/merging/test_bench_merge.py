"""The merge benchmarks (``scripts/bench_merge.py``, ``scripts/bench_merge_ab.py``) run and print one JSON line per case."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _json_lines(script: str, *args: str) -> list[dict]:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        cwd=ROOT,
    )
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_quick_benchmark_prints_json_lines_per_threshold_pair():
    lines = _json_lines("bench_merge.py", "--quick", "--repeats", "1", "--channels", "16")
    assert [(d["tau_s"], d["tau_t"]) for d in lines] == [(0.85, 0.55), (0.8, 0.5)]
    for d in lines:
        assert (d["T"], d["H"], d["W"], d["C"], d["dtype"]) == (128, 14, 14, 16, "float32")
        assert d["repeatable"] is True and d["warmup"] == 3 and d["repeats"] == 1
        assert 0.0 < d["kept_ratio"] <= 1.0 and d["ms_min"] <= d["ms_median"]
        assert d["target_ms"] == {0.85: 280.0, 0.8: 130.0}[d["tau_s"]] and d["target_kind"] == "measured"
        assert d["target_met"] == (d["ms_median"] <= d["target_ms"])


def test_ab_comparison_with_a_revision_runs_and_finds_the_same_plan():
    lines = _json_lines("bench_merge_ab.py", "HEAD", "--frames", "8", "--channels", "16", "--repeats", "2")
    assert [(d["tau_s"], d["tau_t"]) for d in lines] == [(0.85, 0.55), (0.8, 0.5)]
    for d in lines:
        assert d["rev"] == "HEAD" and d["T"] == 8 and d["same_plan"] is True and d["repeats"] == 2
        assert d["same_features"] is True
        assert d["tree_ms"] > 0 and d["rev_ms"] > 0 and d["ratio_tree_over_rev"] > 0
