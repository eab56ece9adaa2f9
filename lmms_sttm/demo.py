"""The main job: the embedded default end to end through lmms-eval to a leaderboard, offline.

``python -m lmms_sttm.demo --out results/demo`` builds the tiny LLaVA-Video checkpoint (LLaVA-NeXT
format, converted on load) and a small VNBench-format benchmark on synthetic clips, runs
``accelerate launch -m lmms_eval --model llava_video_sttm`` for the unreduced model and each
reduction setting (two CPU processes), and writes the leaderboard. A random tiny model answers
at chance: its accuracy columns exercise the pipeline; token counts and times are real.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from lmms_sttm.data.demo_vnbench import write_demo_vnbench
from lmms_sttm.data.tiny import build_tiny

TASK = "vnbench_sttm"
BASELINES = ("tome", "dycoke_stage1", "dycoke", "fastv", "framefusion", "pool")
CAVEAT = (
    "The demo model is a tiny random-weight checkpoint: it answers at chance level or below (most of its "
    "answers are gibberish, which the parser counts as unparsed and wrong); its accuracy columns only show "
    "that the pipeline runs end to end. Visual-token counts, retention and relative times are real "
    "measurements of the methods on it. The sttm_oracle row reads the needle from the pixels (100% "
    "means every question, video and answer reached the scorer intact). FrameFusion budgets compute, "
    "not tokens: on this 4-layer model merging at layer 2, a 50% compute budget leaves (0.5*4-2)/2 = 0 "
    "tokens for the later layers, so it keeps one."
)


def demo_runs(checkpoint: str) -> list[tuple[str, str, str]]:
    """``(tag, lmms-eval model, model_args)`` of every row of the demo leaderboard."""
    base = f"pretrained={checkpoint}"
    return [
        ("oracle", "sttm_oracle", ""),
        ("none", "llava_video_sttm", f"{base},method=none"),
        ("sttm_budget50", "llava_video_sttm", f"{base},method=sttm,budget=50"),
        ("sttm_budget30", "llava_video_sttm", f"{base},method=sttm,budget=30"),
        ("sttm_exact30", "llava_video_sttm", f"{base},method=sttm,budget_mode=exact,retention=0.3"),
        *[(f"{m}_budget50", "llava_video_sttm", f"{base},method={m},budget=50") for m in BASELINES],
    ]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_lmms_eval(model: str, model_args: str, out: Path, env: dict, processes: int) -> Path:
    """One ``accelerate launch -m lmms_eval`` run; returns its results file (raises if none)."""
    if out.exists():
        shutil.rmtree(out)
    launch = [sys.executable, "-m", "accelerate.commands.launch"]
    if processes > 1:
        launch += ["--multi_gpu", "--num_processes", str(processes), "--main_process_port", str(_port())]
    else:
        launch += ["--num_processes", "1"]
    cmd = [*launch, "-m", "lmms_eval", "--model", model, "--tasks", TASK, "--batch_size", "1"]
    if model_args:
        cmd += ["--model_args", model_args]
    cmd += ["--log_samples", "--output_path", str(out), "--verbosity", "WARNING"]
    log = out.parent / f"{out.name}.log"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:
        proc = subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT)
    found = glob.glob(str(out / "**" / "*_results.json"), recursive=True)
    if proc.returncode != 0 or not found:
        raise RuntimeError(f"lmms-eval run failed (exit {proc.returncode}); see {log}\n{' '.join(cmd)}")
    return Path(found[0])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lmms_sttm.demo", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="results/demo", help="where runs and the leaderboard go")
    p.add_argument("--work", default="work_dirs/demo", help="tiny checkpoint, data root and clip cache")
    p.add_argument("--processes", type=int, default=2, help="lmms-eval processes per run (CPU, gloo)")
    p.add_argument("--videos", type=int, default=6, help="synthetic VNBench videos (4 questions each)")
    args = p.parse_args(argv)
    out, work = Path(args.out).absolute(), Path(args.work).absolute()
    began = time.time()

    ckpt = work / "tiny-llava-video"
    if not (ckpt / "config.json").exists():
        build_tiny("llava_video", ckpt)
    data_root = work / "datasets"
    write_demo_vnbench(data_root, args.videos)
    print(f"[demo] checkpoint {ckpt}; data root {data_root} ({4 * args.videos} questions)", flush=True)

    env = dict(os.environ)
    env.update(
        LMMS_STTM_DATA_ROOT=str(data_root), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
        HF_HOME=str(work / "hf"), ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
        WANDB_MODE="disabled",
    )  # fmt: skip
    for tag, model, model_args in demo_runs(str(ckpt)):
        t0 = time.time()
        results = run_lmms_eval(model, model_args, out / "runs" / tag, env, args.processes)
        print(f"[demo] {tag:>14}: {time.time() - t0:5.1f} s -> {results.relative_to(out)}", flush=True)

    board = out / "leaderboard"
    report = [sys.executable, "-m", "lmms_sttm.report", str(out / "runs"), "--out", str(board)]
    subprocess.run(report, env=env, check=True)
    (board / "README.md").write_text(f"# Demo leaderboard\n\n{CAVEAT}\n\nMade by `bash scripts/demo.sh`.\n")
    print(f"[demo] leaderboard: {board}  ({time.time() - began:.0f} s in all)\n[demo] {CAVEAT}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
