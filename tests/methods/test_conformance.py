"""``python -m lmms_sttm.check_method``: passes on the built-ins and the example, fails naming the
rule on deliberately broken methods."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lmms_sttm.check_method import check
from lmms_sttm.conformance.plans import plan_problem
from lmms_sttm.merging.reduction import Reduction
from lmms_sttm.methods import registry

BROKEN = "tests.methods.broken_methods:"


@pytest.mark.parametrize(
    ("name", "rule", "message"),
    [
        ("INCONSISTENT_TOKEN_MAP", "plans_valid", "inconsistent token map"),
        ("NON_DETERMINISTIC", "deterministic", "different plans"),
        ("BUDGET_OVERSHOOT", "exact_budget", "outside"),
        ("QUESTION_READING", "query_agnostic", "reads the last prompt token's attention"),
        ("TWO_STAGES_AT_ONE_SPLIT", "spec", "two stages open a segment at layer 2"),
    ],
)
def test_broken_methods_fail_the_rule_they_break(name, rule, message):
    report = check(BROKEN + name, families=("qwen2_vl",), processes=False, timing_channels=0)
    assert not report["ok"]
    assert report["first_failure"].startswith(rule), report["first_failure"]
    assert message in report["first_failure"]


def test_a_working_method_passes_every_rule_on_every_family_and_in_two_processes():
    report = check(BROKEN + "WORKS", timing_channels=64)
    assert report["ok"], report["first_failure"]
    assert set(report["rules"]) == {"plans_valid", "deterministic", "exact_budget", "query_agnostic",
                                    "by_hand_positions", "processes"}  # fmt: skip
    assert report["ms_per_video"] > 0 and report["query_agnostic"] is True


@pytest.mark.parametrize("method", list(registry.BUILTIN))
def test_every_builtin_passes(method):
    report = check(method, families=("llava_onevision",), processes=False, timing_channels=0)
    assert report["ok"], report["first_failure"]


def test_cli_exit_code_and_json():
    ok = subprocess.run(
        [sys.executable, "-m", "lmms_sttm.check_method", "pool", "--json", "--families", "qwen2_5_vl",
         "--no-processes", "--timing-channels", "0"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert json.loads(ok.stdout)["ok"] is True
    bad = subprocess.run(
        [sys.executable, "-m", "lmms_sttm.check_method", "no_such_method", "--no-processes"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert (
        bad.returncode == 1
        and "FAIL: spec (load): model_args method='no_such_method' is not accepted" in bad.stdout
    )


def test_plan_problem_names_each_inconsistency():
    import torch

    x = torch.randn(2, 2, 3, 4)
    good = Reduction.identity(x)
    assert plan_problem(good, 12, 4) is None
    cases = {
        "num_patches differ": dict(num_patches=good.num_patches + 1),
        "covering nothing": dict(token_map=torch.zeros(12, dtype=torch.long)),
        "rep_index must name": dict(rep_index=torch.zeros(12, dtype=torch.long)),
        "do not fit": dict(features=good.features[:, :3]),
        "position_index": dict(position_index=torch.full((12,), 99)),
    }
    import dataclasses

    for message, change in cases.items():
        assert message in plan_problem(dataclasses.replace(good, **change), 12, 4)
    swapped = dataclasses.replace(good, rep_index=good.rep_index.flip(0))
    assert "not covered by its own kept token" in plan_problem(swapped, 12, 4)
