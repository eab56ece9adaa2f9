"""An installed lmms_sttm is visible to lmms-eval's own console script: `lmms-eval models` lists our
models and `lmms-eval tasks list` our tasks, with no flags and no environment variables.

The package is installed as a user gets it: our wheel unpacked into a throwaway venv whose
site-packages also reaches the locked venv's (so its lmms_sttm.pth start-up file is processed).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from lmms_sttm._task_path import TASKS_DIR
from lmms_sttm.models import MODEL_CLASSES
from tests.conftest import REPO

pytestmark = pytest.mark.e2e


def _shipped_tasks() -> set[str]:
    names = set()
    for path in Path(TASKS_DIR).rglob("*.yaml"):
        names |= set(re.findall(r"^(?:task|group): *([A-Za-z0-9_]+) *$", path.read_text(), re.M))
    return names


@pytest.fixture(scope="module")
def installed(tmp_path_factory, built_wheel):
    root = tmp_path_factory.mktemp("install")
    wheel = built_wheel
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    zipfile.ZipFile(wheel).extractall(site)
    # The locked venv's distributions after ours (a path line: its own .pth files stay unprocessed).
    (site / "zz_locked_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    console = Path(sys.executable).parent / "lmms-eval"
    assert console.is_file(), console
    return python, console, root


def _lmms_eval(installed, offline_env, *args: str) -> str:
    python, console, root = installed
    env = {k: v for k, v in offline_env.items() if k not in ("PYTHONPATH", "LMMS_EVAL_PLUGINS")}
    proc = subprocess.run(
        [str(python), str(console), *args],
        env=env,
        cwd=str(root),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout


def test_models_lists_ours(installed, offline_env):
    out = _lmms_eval(installed, offline_env, "models")
    listed = {
        line.split()[0] for line in out.splitlines() if line.strip() and not line.startswith(("-", " "))
    }
    assert set(MODEL_CLASSES) <= listed, out[-2000:]


def test_tasks_list_lists_ours_once_with_or_without_include_path(installed, offline_env):
    python = installed[0]
    tasks_dir = subprocess.run(
        [str(python), "-c", "import lmms_sttm._task_path as t; print(t.TASKS_DIR)"],
        check=True,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    ).stdout.strip()
    assert not tasks_dir.startswith(str(REPO)), tasks_dir  # the installed copy, not the checkout
    plain = _lmms_eval(installed, offline_env, "tasks", "list")
    listed = {line.strip() for line in plain.splitlines()[1:] if line.strip()}
    assert {"vnbench_sttm"} | _shipped_tasks() <= listed
    explicit = _lmms_eval(installed, offline_env, "tasks", "list", "--include-path", tasks_dir)
    assert explicit == plain
