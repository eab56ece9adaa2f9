"""Every number the docs quote from committed results matches what those results give today.

``scripts/docs_numbers.py`` recomputes each marked number (``<!--n:KEY-->VALUE<!--/n-->``) from the
committed files; a number left stale after the results changed, or a marker naming no known
value, fails here with the fix (``.venv/bin/python scripts/docs_numbers.py --write``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import docs_numbers  # noqa: E402


def test_docs_numbers_match_the_committed_results():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "docs_numbers.py")], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_check_catches_a_stale_number(tmp_path, monkeypatch):
    values = docs_numbers.values()
    key = "organism.none.acc"
    stale = "1.0" if values[key] != "1.0" else "2.0"
    doc = tmp_path / "docs" / "x.md"
    doc.parent.mkdir()
    doc.write_text(f"held-out <!--n:{key}-->{stale}<!--/n-->% and <!--n:no.such.key-->3<!--/n-->\n")
    monkeypatch.setattr(docs_numbers, "ROOT", tmp_path)
    monkeypatch.setattr(docs_numbers, "values", lambda: values)
    assert docs_numbers.main([]) == 1
    assert docs_numbers.main(["--write"]) == 1  # the unknown key still fails
    assert f"<!--n:{key}-->{values[key]}<!--/n-->" in doc.read_text()


def test_values_are_computed_from_the_results_files():
    """Two independent readings agree: the organism's unreduced accuracy from its results JSON."""
    import glob
    import json

    (path,) = glob.glob(str(ROOT / "results/organism/runs/none/**/*_results.json"), recursive=True)
    acc = json.loads(Path(path).read_text())["results"]["vnbench_sttm"]["sttm_acc,none"]
    assert docs_numbers.values()["organism.none.acc"] == f"{acc:.1f}"
    assert docs_numbers.values()["lock.packages"] == str(
        sum(
            1
            for line in (ROOT / "requirements.lock").read_text().splitlines()
            if "==" in line and not line.startswith("#")
        )
    )
