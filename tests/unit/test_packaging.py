"""The package installs as users get it: a wheel carries task YAMLs/data and the entry point; pins hold."""

from __future__ import annotations

import zipfile
from importlib.metadata import requires, version
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]


def test_wheel_ships_task_files_and_entry_point(built_wheel):
    wheel = built_wheel
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in ("synthetic_needle_sttm.yaml", "synthetic_needle.json", "utils.py"):
        assert f"lmms_sttm/tasks/synthetic/{f}" in names
    (ep,) = [n for n in names if n.endswith("entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(ep).decode()
    assert "[lmms_eval.models]" in text and "lmms_sttm = lmms_sttm.models:manifests" in text
    assert not any(n.startswith("tests/") for n in names)


def test_installed_versions_satisfy_the_fenced_pins():
    reqs = {
        Requirement(r).name.lower().replace("_", "-"): Requirement(r) for r in requires("lmms_sttm") or []
    }
    for dist in ("lmms-eval", "transformers", "torch", "torchvision"):
        assert reqs[dist].specifier.contains(version(dist), prereleases=True), (dist, version(dist))
    assert version("lmms_eval") == "0.7.3"
    assert version("torch").split("+")[0] == "2.14.1"
    assert version("torchvision").split("+")[0] == "0.29.1"
