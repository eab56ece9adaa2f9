"""The entry point as lmms-eval loads it, in fresh interpreters: cheap, lazy, never fatal to other plugins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import zipfile
from pathlib import Path

from lmms_sttm.models import MODEL_CLASSES
from tests.conftest import REPO

HEAVY = ["torch", "transformers", "datasets", "lmms_eval.tasks"]


def _python(code: str, *extra_path: Path) -> dict:
    env = dict(os.environ)
    env.pop("LMMS_EVAL_PLUGINS", None)
    paths = [*map(str, extra_path), str(REPO), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        cwd=tempfile.gettempdir(),  # not the checkout: its lmms_sttm.egg-info would come first on sys.path
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["stderr"] = proc.stderr
    return out


def _dist(root: Path, name: str, entry: str) -> None:
    info = root / f"{name}-0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.0\n")
    (info / "entry_points.txt").write_text(f"[lmms_eval.models]\n{name} = {entry}\n")


def test_loading_the_registry_imports_nothing_heavy_and_tasks_register_on_first_use():
    out = _python(
        f"""
        import json, sys
        from lmms_eval.models import MODEL_REGISTRY_V2, AVAILABLE_SIMPLE_MODELS
        heavy = [m for m in {HEAVY!r} if m in sys.modules]
        ids = MODEL_REGISTRY_V2.list_canonical_model_ids()
        from lmms_eval.tasks import TaskManager
        tasks = TaskManager("ERROR", include_defaults=False).all_tasks
        from lmms_sttm import _task_path
        hooks = [f for f in sys.meta_path if isinstance(f, _task_path._Finder)]
        print(json.dumps(dict(heavy=heavy, ids=ids, listed=sorted(AVAILABLE_SIMPLE_MODELS),
                              tasks=sorted(tasks), hooks=len(hooks))))
        """
    )
    assert out["heavy"] == []
    assert set(MODEL_CLASSES) <= set(out["ids"])
    assert set(MODEL_CLASSES) <= set(out["listed"])  # what `lmms-eval models` prints
    assert {"vnbench_sttm", "synthetic_needle_sttm", "sttm_suite"} <= set(out["tasks"])
    assert out["hooks"] == 0  # one-shot


def test_other_plugins_load_when_lmms_eval_tasks_is_broken(tmp_path):
    # Our entry point first (a dist named lmms_sttm ahead of the installed one), a fake plugin after it.
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    _dist(ours, "lmms_sttm", "lmms_sttm.models:manifests")
    _dist(theirs, "fake_plugin", "fake_plugin:manifests")
    (theirs / "fake_plugin.py").write_text(
        "from lmms_eval.models.registry_v2 import ModelManifest\n"
        "def manifests():\n"
        "    return [ModelManifest(model_id='fake_plugin_model', simple_class_path='fake_plugin.Fake')]\n"
    )
    out = _python(
        """
        import json, sys, warnings
        warnings.simplefilter("always")
        class Broken:  # `import lmms_eval.tasks` fails, as with a later lmms-eval that moved it
            def find_spec(self, name, path, target=None):
                if name == "lmms_eval.tasks":
                    raise ImportError("simulated: lmms_eval.tasks moved")
        sys.meta_path.insert(0, Broken())
        from importlib.metadata import entry_points
        order = [ep.name for ep in entry_points(group="lmms_eval.models")]
        from lmms_eval.models import MODEL_REGISTRY_V2
        ids = MODEL_REGISTRY_V2.list_canonical_model_ids()
        try:
            import lmms_eval.tasks
            tasks_error = None
        except ImportError as exc:
            tasks_error = str(exc)
        print(json.dumps(dict(order=order, ids=ids, tasks_error=tasks_error)))
        """,
        ours,
        theirs,
    )
    assert out["order"].index("lmms_sttm") < out["order"].index("fake_plugin")
    assert "fake_plugin_model" in out["ids"]
    assert set(MODEL_CLASSES) <= set(out["ids"])
    assert out["tasks_error"] == "simulated: lmms_eval.tasks moved"
    assert "Failed to load model entry-point manifests" not in out["stderr"]


def test_bench_import_script_measures_both_variants():
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench_import.py"), "--pairs", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    out = json.loads(proc.stdout)
    assert out["registers_our_models"] == {"with": True, "without": False}
    assert out["heavy_modules_loaded"] == {"with": [], "without": []}
    assert len(out["seconds"]["with"]) == len(out["seconds"]["without"]) == 1
    assert out["ratio_median_of_pairs"] > 0


def test_startup_file_registers_tasks_for_a_bare_task_manager():
    # What lmms_sttm.pth does at start-up; then TaskManager() without lmms-eval's model registry,
    # as `lmms-eval tasks list` builds it.
    out = _python(
        """
        import json, sys
        import lmms_sttm._startup
        from lmms_eval.tasks import TaskManager
        tasks = TaskManager("ERROR", include_defaults=False).all_tasks
        print(json.dumps(dict(tasks=sorted(tasks), models="lmms_eval.models" in sys.modules)))
        """
    )
    assert out["models"] is False
    assert {"vnbench_sttm", "sttm_suite"} <= set(out["tasks"])


def test_wheel_and_editable_install_ship_the_startup_file(tmp_path, built_wheel):
    code = "import sys; from setuptools import build_meta; build_meta.build_editable(sys.argv[1])"
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=REPO, check=True, capture_output=True)
    (editable,) = tmp_path.glob("lmms_sttm-*.whl")
    for wheel in (built_wheel, editable):
        with zipfile.ZipFile(wheel) as z:
            assert z.read("lmms_sttm.pth").decode() == "import lmms_sttm._startup\n", wheel.name
