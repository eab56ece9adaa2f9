"""Shared test fixtures: the offline environment, the shared annotation data, lmms-eval runs."""

from __future__ import annotations

import glob
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LMMS_STTM_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; missing data fails under CI=true and skips elsewhere."""
    if not (SHARED_DATA / "annotations").is_dir():
        msg = f"shared annotation data not found at {SHARED_DATA}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return SHARED_DATA


@pytest.fixture(scope="session")
def offline_env(tmp_path_factory) -> dict[str, str]:
    """Environment for subprocess runs: hubs off, caches and clips in a session temp dir."""
    root = tmp_path_factory.mktemp("env")
    env = dict(os.environ)
    env.update(
        HF_HOME=str(root / "hf"),
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        LMMS_STTM_SYNTHETIC_DIR=str(root / "clips"),
        OMP_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
        WANDB_MODE="disabled",
    )
    env.pop("LMMS_EVAL_PLUGINS", None)
    return env


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory):
    """``get(arch) -> folder``: tiny random checkpoints, each built once per session (offline, deterministic).

    Any arch of ``lmms_sttm.data.tiny.ARCHS`` (``llava_video``, ``llava_onevision``, ``qwen2_vl``,
    ``qwen2_5_vl``, ``qwen3_vl``, ``qwen3_vl_moe``, ``qwen3_5``, ``qwen3_5_moe``, ``internvl3_5``); an
    arch is built on its first ``get``, so a session builds only the archs its tests ask for.
    """
    from lmms_sttm.data.tiny import build_tiny

    root = tmp_path_factory.mktemp("tiny")
    cache: dict[str, str] = {}

    def get(arch: str) -> str:
        if arch not in cache:
            cache[arch] = str(build_tiny(arch, root / arch))
        return cache[arch]

    return get


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory) -> Path:
    """This checkout built once per session as a regular wheel (``pip wheel``, no build isolation)."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("lmms_sttm-*.whl")
    return wheel


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(processes: int = 2) -> list[str]:
    """Launcher prefix for a multi-process CPU run (gloo) on a free port."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        str(processes),
        "--master_port",
        str(free_port()),
    ]


def run_lmms_eval(args: list[str], out_dir: Path, env: dict, launcher: list[str] | None = None, timeout=600):
    """Run ``-m lmms_eval`` (optionally under a launcher) and return ``(results, samples)``.

    lmms-eval exits 0 even when a run fails, so success is judged by the results file.
    ``samples`` maps task -> list of sample dicts sorted by doc_id.
    """
    cmd = [*(launcher or [sys.executable]), "-m", "lmms_eval", *args]
    cmd += ["--batch_size", "1", "--log_samples", "--output_path", str(out_dir), "--verbosity", "DEBUG"]
    proc = subprocess.run(
        cmd, env=env, cwd=str(out_dir.parent), capture_output=True, text=True, timeout=timeout
    )
    return read_run(
        out_dir, proc.returncode, f"{' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    )


def read_run(out_dir: Path, returncode: int = 0, log: str = ""):
    """``(results, samples)`` of a finished run in ``out_dir``; fails with ``log`` when it did not succeed."""
    files = glob.glob(str(out_dir / "**" / "*_results.json"), recursive=True)
    if returncode != 0 or len(files) != 1:
        raise AssertionError(f"lmms-eval run failed (rc={returncode}, results files={files}):\n{log}")
    results = json.loads(Path(files[0]).read_text())
    samples = {}
    for f in glob.glob(str(Path(files[0]).parent / "*_samples_*.jsonl")):
        task = Path(f).stem.split("_samples_", 1)[1]
        rows = [json.loads(line) for line in Path(f).read_text().splitlines() if line.strip()]
        samples[task] = sorted(rows, key=lambda r: r["doc_id"])
    return results, samples


def stats_rows(out: Path) -> list[dict]:
    """Every per-answer statistics row a run under ``out`` wrote (``sttm_stats/*_rank*.jsonl``)."""
    rows = []
    for f in sorted((out / "sttm_stats").glob("*_rank*.jsonl")):
        rows += [json.loads(line) for line in f.read_text().splitlines()]
    return rows


def by_question(samples: dict, stats: list[dict], task: str) -> dict:
    """question_id -> (answer, visual tokens, kept) of ``task``'s answers: doc_ids differ between
    world sizes, question ids do not."""
    qid = {r["doc_id"]: r["sttm_acc"]["question_id"] for r in samples[task]}
    return {qid[s["doc_id"]]: (s["answer"], s["visual_tokens"], s["visual_tokens_kept"]) for s in stats}


def untimed(results: dict) -> dict:
    """``results`` without the timing metrics (``ttft_ms``, ``merge_ms``: wall times differ run to run)."""
    return {
        task: {k: v for k, v in values.items() if not k.startswith(("ttft_ms", "merge_ms"))}
        for task, values in results.items()
    }
