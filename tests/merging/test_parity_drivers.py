"""The parity drivers of ``scripts/parity/`` against a checkout of the STTM authors' repository.

Runs only when ``LMMS_STTM_AUTHORS_DIR`` names a checkout of HYUNJS/STTM at commit 00736c7
(``git clone https://github.com/HYUNJS/STTM && git -C STTM checkout 00736c7``); skips otherwise,
also under CI (the authors' code is not part of this repository); the pin check runs always. Each driver runs on one seeded
video per layout (the full sweeps are the drivers' defaults, see docs/parity.md) and must find the
authors' results: identical, or different only where the driver shows a tie or a threshold at
float-rounding distance.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
AUTHORS = os.environ.get("LMMS_STTM_AUTHORS_DIR")
needs_authors = pytest.mark.skipif(
    not AUTHORS,
    reason="set LMMS_STTM_AUTHORS_DIR to a checkout of HYUNJS/STTM at 00736c7 to run the parity drivers",
)


def driver(name: str, *args: str) -> dict:
    cmd = [sys.executable, str(ROOT / "scripts" / "parity" / f"{name}.py"), "--authors-dir", AUTHORS, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["authors_commit"].startswith("00736c7")
    return out


@needs_authors
def test_sttm_merge_matches_the_authors():
    out = driver("sttm_merge", "--videos", "1")
    for dtype in ("float32", "bfloat16"):
        res = out[dtype]
        mismatched = res["cases"] - res["same_rectangles"]
        assert res["cases"] == 36 and res["same_count"] >= res["same_rectangles"]
        assert mismatched == sum(dtype in m for m in out["mismatch_at_rounding_distance"])
    assert out["mismatch_otherwise"] == []
    assert out["float32"]["max_feature_diff_ulps"] <= 64
    assert out["union_find_components_other_count"] > 0  # the comparison tells groupings apart


@needs_authors
def test_baselines_match_the_authors():
    out = driver("baselines", "--videos", "1")
    assert len(out["rows"]) == 12
    for row in out["rows"]:
        assert set(row["dycoke1"]) <= {"same", "tie"} and set(row["dycoke2"]) <= {"same", "tie"}, row
        assert set(row["tome"]) <= {"same", "reordered"}, row


@needs_authors
def test_framefusion_matches_the_authors():
    out = driver("framefusion", "--videos", "1")
    for row in out["rows"]:
        assert row["same"] == row["videos"] and row["differ"] == [], row
        assert row["max_state_diff"] <= 1e-4


@needs_authors
def test_speed_driver_runs_both_implementations():
    out = driver("speed", "--frames", "8", "--channels", "256", "--repeats", "1")
    for row in out["rows"]:
        assert row["authors_ms"] > 0 and row["ours_ms"] > 0 and row["speedup"] > 0


def test_a_checkout_at_another_commit_is_refused(tmp_path):
    fake = tmp_path / "STTM" / "token_merging_utils"
    fake.mkdir(parents=True)
    for name in ("quadtree_builder.py", "quadtree_spatial_merger.py", "quadtree_temporal_merger.py"):
        (fake / name).write_text("# another version\n")
    cmd = [
        sys.executable,
        str(ROOT / "scripts/parity/sttm_merge.py"),
        "--authors-dir",
        str(fake.parent),
        "--videos",
        "1",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "differs from the pinned commit 00736c7" in proc.stderr
