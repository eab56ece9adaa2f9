"""The out-of-tree example method (examples/l2keep): installed as a package, discovered through its
entry point, and run through ``python -m lmms_eval`` on the tiny checkpoints of three families, in
one and two processes with identical results."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lmms_sttm.data.tiny import build_tiny
from lmms_sttm.example_method import install_example
from tests.conftest import by_question, run_lmms_eval, stats_rows, torchrun, untimed

pytestmark = pytest.mark.e2e
TASK = "synthetic_needle_sttm"
MODELS = {"llava_video_sttm": "llava_video", "qwen2_vl_sttm": "qwen2_vl", "qwen2_5_vl_sttm": "qwen2_5_vl"}
ARGS = "method=l2keep,budget_mode=exact,retention=0.3"


@pytest.fixture(scope="module")
def example_env(tmp_path_factory, offline_env):
    site = install_example(tmp_path_factory.mktemp("site"))
    env = dict(offline_env)
    env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [env.get("PYTHONPATH")])])
    return env


def test_entry_point_is_discovered_without_importing_the_method(example_env):
    code = (
        "import sys; from lmms_sttm.methods import registry; names = registry.names();"
        "loaded = 'lmms_sttm_l2keep' in sys.modules; spec = registry.get('l2keep');"
        "print(names, loaded, spec.name, spec.query_agnostic, spec.reference)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=example_env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split("]")[1].split() == ["False", "l2keep", "True", "example", "method", "shipped",
                                                "with", "lmms_sttm", "(examples/l2keep)"]  # fmt: skip
    assert "'l2keep'" in out.stdout.split("]")[0]
    listed = subprocess.run([sys.executable, "-c", "import lmms_sttm.methods.registry as r; print(r.names())"],
                            env={k: v for k, v in example_env.items() if k != "PYTHONPATH"},
                            capture_output=True, text=True, check=True)  # fmt: skip
    assert "l2keep" not in listed.stdout  # not installed: not there


@pytest.mark.parametrize("name", sorted(MODELS))
def test_example_runs_through_lmms_eval_in_one_and_two_processes(name, example_env, tmp_path):
    ckpt = str(build_tiny(MODELS[name], tmp_path / "ckpt"))
    args = ["--model", name, "--model_args", f"pretrained={ckpt},{ARGS}", "--tasks", TASK]
    one, one_samples = run_lmms_eval(args, tmp_path / "one", example_env)
    two, two_samples = run_lmms_eval(args, tmp_path / "two", example_env, torchrun())
    one_stats, two_stats = stats_rows(tmp_path / "one"), stats_rows(tmp_path / "two")
    assert untimed(one["results"]) == untimed(two["results"])
    assert by_question(one_samples, one_stats, TASK) == by_question(two_samples, two_stats, TASK)
    assert {s["rank"] for s in two_stats} == {0, 1} and len(one_stats) == 16
    for s in one_stats:
        assert s["error"] is None and s["method"] == "l2keep"
        assert abs(s["visual_tokens_kept"] / s["visual_tokens"] - 0.3) <= 0.01
        assert s["params"] == {"keep": None, "budget": None, "budget_mode": "exact", "retention": 0.3,
                               "tolerance": 0.01, "decode_positions": "authors"}  # fmt: skip
    # query-agnostic (derived from its stages): the second question on each clip reuses the prefix
    assert sum(s["prefix_reused"] for s in one_stats) == 8
