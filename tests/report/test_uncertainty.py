"""The leaderboard's uncertainty helpers and the run provenance record, on hand-worked inputs."""

from __future__ import annotations

import pytest

from lmms_sttm.models import provenance
from lmms_sttm.report.runs import TaskRun, accuracy_stderr
from lmms_sttm.report.uncertainty import far_from_label, interval, label_share, mean_stderr


def _task(stderr):
    return TaskRun("t", None, 50.0, "sttm_acc", 4, 4, None, stderr=stderr)


def test_interval_and_mean_of_benchmarks():
    assert interval(70.0, 5.0) == pytest.approx((70 - 9.79982, 70 + 9.79982), abs=1e-4)
    assert interval(98.0, 5.0) == pytest.approx((88.2002, 100.0), abs=1e-4)  # clipped at 100
    assert interval(70.0, None) is None
    assert mean_stderr([_task(3.0), _task(4.0)]) == pytest.approx(2.5)  # sqrt(9 + 16) / 2
    assert mean_stderr([_task(3.0), _task(None)]) is None


def test_stderr_prefers_clustered_then_clt_then_bootstrap():
    values = {
        "sttm_acc_stderr,none": "N/A",
        "sttm_acc_stderr_clt,none": 4.0,
        "sttm_acc_stderr_clustered,none": 6.5,
    }
    assert accuracy_stderr(values, "sttm_acc") == (6.5, "clustered")
    values["sttm_acc_stderr_clustered,none"] = "N/A"
    assert accuracy_stderr(values, "sttm_acc") == (4.0, "clt")
    assert accuracy_stderr({"sttm_acc_stderr,none": 2.0}, "sttm_acc") == (2.0, "bootstrap")
    assert accuracy_stderr({}, "sttm_acc") == (None, None)


def test_kept_share_far_from_label():
    assert (
        label_share({"budget": "50"}) == 50
        and label_share({"budget_mode": "exact", "retention": "0.3"}) == 30
    )
    assert label_share({"tau_s": "0.9"}) is None
    assert "7.9%" in far_from_label(7.9, {"budget": "50"})  # the paper's thresholds on another model
    assert far_from_label(35.5, {"budget": "30"}) is None  # 5.5 points off: within max(5, 7.5)
    assert far_from_label(38.0, {"budget": "30"}) is not None  # 8 points off
    assert far_from_label(3.0, {"budget_mode": "exact", "retention": "0.05"}) is None  # within 5 points
    assert far_from_label(None, {"budget": "50"}) is None


def test_cpu_description_names_the_vector_extensions():
    info = "processor\t: 0\nmodel name\t: Example CPU 9000\nflags\t\t: fpu sse4_2 avx avx2 fma avx512f\n"
    assert provenance.cpu_description(info) == "Example CPU 9000 (sse4_2, avx, avx2, fma, avx512f)"
    arm = "processor\t: 0\nFeatures\t: fp asimd sve\nCPU part\t: 0xd40\n"
    assert provenance.cpu_description(arm).endswith("(asimd, sve)")


def test_readable_command_has_no_machine_paths():
    argv = [
        "/opt/venv/bin/python",
        "-m",
        "accelerate.commands.launch",
        "--num_processes",
        "2",
        "-m",
        "lmms_eval",
    ]
    assert (
        provenance.readable_command(argv)
        == "python -m accelerate.commands.launch --num_processes 2 -m lmms_eval"
    )
    argv = ["/opt/venv/bin/python", "/opt/venv/bin/accelerate", "launch", "--model_args", "a=1,b=2"]
    assert provenance.readable_command(argv) == "accelerate launch --model_args a=1,b=2"
    assert (
        provenance.readable_command(["python", "-c", "print('x y')"])
        == "python -c 'print('\"'\"'x y'\"'\"')'"
    )
