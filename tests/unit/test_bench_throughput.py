"""``scripts/bench_throughput.py``: its CPU accounting agrees with the kernel's own per-thread clocks,
the speed-up ceiling is worked by hand, and a small run prints the JSON it documents with identical
answers (the figures themselves come from running the script, not from this test)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import bench_throughput  # noqa: E402

linux_only = pytest.mark.skipif(
    not os.path.exists(f"/proc/self/task/{threading.get_native_id()}/schedstat"),
    reason="per-thread scheduler statistics are a Linux /proc file",
)


@pytest.mark.parametrize(("model", "read", "ceiling"), [(2.0, 4.0, 1.5), (3.0, 3.0, 2.0), (5.0, 1.0, 1.2)])
def test_speedup_ceiling_by_hand(model, read, ceiling):
    """Serial: m + r seconds; overlapped on two free cores: the longer side alone."""
    assert bench_throughput.speedup_ceiling(model, read) == pytest.approx(ceiling)


@linux_only
def test_thread_schedstat_counts_this_threads_cpu_and_not_its_sleep():
    """On-CPU seconds move with ``time.thread_time`` (the thread's CPU clock) and not while it sleeps."""
    before, clock = bench_throughput.thread_schedstat(), time.thread_time()
    while time.thread_time() - clock < 0.15:
        pass
    spun, clock_spun = bench_throughput.thread_schedstat(), time.thread_time() - clock
    time.sleep(0.2)
    slept = bench_throughput.thread_schedstat()
    assert spun[0] - before[0] == pytest.approx(clock_spun, abs=0.03)
    assert slept[0] - spun[0] < 0.03  # asleep: neither on a CPU ...
    assert 0 <= slept[1] - spun[1] < 0.2  # ... nor waiting for one (only the wake-up may queue)


def test_cores_available_counts_every_thread_and_no_more():
    """CPU per wall second of N hashing threads lies in (0, N] (plus the clocks' granularity)."""
    one = bench_throughput.cores_available(seconds=0.2, threads=1)
    assert 0 < one <= 1.05


@pytest.fixture(scope="module")
def small_run(offline_env):
    args = ["--clips", "2", "--frames", "8", "--scale", "1", "--questions", "2", "--repeats", "1"]
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_throughput.py"), *args],
        env=offline_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_small_run_prints_the_documented_json(small_run):
    out = small_run
    assert out["answers_identical"] is True and out["answers"] == 4
    assert out["clip_size"] == [224, 224] and len(out["cores_available"]) == 2
    for key in ("prefetch_0", "prefetch_2"):
        run = out["runs"][key]
        assert run["failed"] == 0 and len(run["wall_s"]) == 1
        assert run["cores_used_median"] == pytest.approx(run["cpu_s_median"] / run["wall_s_median"], rel=0.02)
        if run["model_thread_cpu_s_median"] is not None:  # the model thread's CPU is part of the process's
            assert run["model_thread_cpu_s_median"] <= run["cpu_s_median"] + 0.01
            parts = (
                "model_thread_cpu_s_median",
                "model_thread_runqueue_s_median",
                "model_thread_blocked_s_median",
            )
            assert sum(run[k] for k in parts) == pytest.approx(run["wall_s_median"], abs=0.01)  # one run
            assert run["model_thread_blocked_s_median"] >= -0.01
    ahead = out["runs"]["prefetch_2"]  # waiting for a read done ahead: asleep (bar the wake-ups' queueing)
    if ahead["model_thread_blocked_s_median"] is not None:
        assert ahead["model_thread_blocked_s_median"] >= ahead["gpu_idle_s_median"] - 0.1
    assert out["speedup"] == pytest.approx(
        out["runs"]["prefetch_0"]["wall_s_median"] / out["runs"]["prefetch_2"]["wall_s_median"], rel=0.01
    )
    assert out["target_met"] == (out["speedup"] >= 1.4)
    assert (out["note"] is None) == (min(out["cores_available"]) >= 1.5)
