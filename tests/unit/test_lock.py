"""The environment equals requirements.lock, the lock pins its fences, and setup.sh notices changes."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _check_lock():
    spec = importlib.util.spec_from_file_location("check_lock", REPO / "scripts" / "check_lock.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_lock = _check_lock()


def test_installed_distributions_equal_the_lock():
    lock = check_lock.read_lock(REPO / "requirements.lock")
    diff = check_lock.differences(lock, check_lock.installed())
    assert not diff, f"the venv differs from requirements.lock (first: {diff[0]}); run bash scripts/setup.sh"


def test_differences_name_changed_missing_and_extra_packages():
    lock = {"torch": "2.14.1", "filelock": "4.2.12", "six": "1.16.0"}
    have = {
        "torch": "2.14.1+cpu",
        "filelock": "4.3.1",
        "extra-pkg": "1.0",
        "pip": "23.2.1",
        "lmms-sttm": "0.1.0",
    }
    assert check_lock.differences(lock, have) == [
        "extra-pkg: installed 1.0, not in the lock",
        "filelock: installed 4.3.1, locked 4.2.12",
        "six: locked 1.16.0, not installed",
    ]


def test_lock_is_exact_and_honours_the_fences():
    lock = check_lock.read_lock(REPO / "requirements.lock")
    assert lock["torch"] == "2.14.1" and lock["torchvision"] == "0.29.1"
    major, minor = (int(p) for p in lock["filelock"].split(".")[:2])
    assert (major, minor) < (4, 3), "lmms-eval 0.7.3 imports filelock._api, removed in filelock 4.3"
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"filelock<4.3"' in pyproject


def test_read_lock_rejects_a_range(tmp_path):
    bad = tmp_path / "lock.txt"
    bad.write_text("torch==2.14.1\nnumpy>=1.26\n")
    with pytest.raises(ValueError, match="not an exact pin"):
        check_lock.read_lock(bad)


def _fake_project(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the setup files and a venv whose python only logs its arguments."""
    proj = tmp_path / "proj"
    (proj / "scripts").mkdir(parents=True)
    for name in (
        "scripts/setup.sh",
        "scripts/check_lock.py",
        "pyproject.toml",
        "setup.py",
        "requirements.lock",
    ):
        (proj / name).write_bytes((REPO / name).read_bytes())
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    log = tmp_path / "calls.log"
    python = venv / "bin" / "python"
    python.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\nexit 0\n')
    python.chmod(0o755)
    return proj, log


def _setup(proj: Path, tmp_path: Path) -> str:
    env = dict(os.environ, LMMS_STTM_VENV=str(tmp_path / "venv"))
    run = subprocess.run(["bash", "scripts/setup.sh"], cwd=proj, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return run.stderr


def test_setup_reinstalls_when_the_lock_changes(tmp_path):
    proj, log = _fake_project(tmp_path)
    assert "installed requirements.lock" in _setup(proj, tmp_path)
    calls = log.read_text()
    assert "install --quiet --disable-pip-version-check --no-deps torch==2.14.1 torchvision==0.29.1" in calls
    assert "-m pip check" in calls and "scripts/check_lock.py" in calls
    log.write_text("")
    assert "up to date" in _setup(proj, tmp_path)
    assert "pip install" not in log.read_text()
    lock = proj / "requirements.lock"
    lock.write_text(lock.read_text().replace("filelock==4.2.12", "filelock==4.2.11"))
    assert "installed requirements.lock" in _setup(proj, tmp_path)
    assert "-m pip install" in log.read_text()


@pytest.mark.skipif(sys.platform != "linux", reason="the lock targets linux x86-64")
def test_pip_check_is_clean():
    run = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
