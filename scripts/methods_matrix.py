"""Every 2025-26 method on every model family's tiny checkpoint through ``python -m lmms_eval``.

The matrix the test suite only samples (``tests/e2e/test_new_methods.py``,
``tests/e2e/test_holitom_flashvid_e2e.py``): each method (``evs``, ``vidcom2``, ``fastvid``,
``holitom``, ``flashvid``) x each family (LLaVA-Video, LLaVA-OneVision, Qwen2-VL, Qwen2.5-VL,
Qwen3-VL, InternVL3.5, the Qwen3.5 hybrid) x each setting (``budget=50``, ``budget=30``,
``budget_mode=exact,retention=0.3``) on ``synthetic_needle_sttm`` (16 questions on 8 clips, no
downloads), in one process; the settings named by ``--two-processes`` (default: the exact one) also
in two (``torch.distributed.run``, gloo) and compared with the one-process run.

Prints one JSON line per cell and writes them all to ``--out`` (a JSON list). Per cell: the retained
share over the 16 answers (``visual_tokens_kept / visual_tokens``: mean, min, max; for the two-stage
methods the count after their last stage), whether every answer of an exact run is within one point
of the requested retention, accuracy (``sttm_acc``), failed answers, prefix reuse, wall seconds, and
for two-process cells whether the metrics (timings aside; float means to 1e-12 relative) and every
question's (answer, tokens before, tokens after) equal the one-process run's.

Usage: ``nice -n 10 .venv/bin/python scripts/methods_matrix.py --out matrix.json``
(``--methods evs,fastvid``, ``--families qwen3_vl,internvl3_5``, ``--settings exact30`` narrow it;
about 12 s per run on 2 idle CPU cores, 90 runs and 30 two-process ones). Parts run separately (e.g. one process per group of
families) combine with ``--merge part1.log part2.log ... --out matrix.json``: the cells are the
JSON lines of the parts' output, a later line for the same (method, family, setting) replacing an
earlier one.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TASK = "synthetic_needle_sttm"
METHODS = ("evs", "vidcom2", "fastvid", "holitom", "flashvid")
#: tiny architecture -> the ``--model`` that runs it
FAMILIES = {
    "llava_video": "llava_video_sttm",
    "llava_onevision": "llava_onevision_sttm",
    "qwen2_vl": "qwen2_vl_sttm",
    "qwen2_5_vl": "qwen2_5_vl_sttm",
    "qwen3_vl": "qwen3_vl_sttm",
    "internvl3_5": "internvl3_5_sttm",
    "qwen3_5": "qwen3_5_sttm",
}
#: model args a family always takes: the tiny Qwen3.5 hybrid answers without thinking (an untrained
#: model never closes the block) and, with full attention at layers 3 and 7 of 8, runs HoliTom's and
#: FlashVID's inner stages at layer 4 (their default layers would read layer 7, the last)
FAMILY_ARGS = {"qwen3_5": ",enable_thinking=false"}
METHOD_ARGS = {("qwen3_5", "holitom"): ",inner_layer=4", ("qwen3_5", "flashvid"): ",prune_layer=4"}
#: setting name -> (model args, the retention an exact run must reach or None)
SETTINGS = {
    "budget50": ("budget=50", None),
    "budget30": ("budget=30", None),
    "exact30": ("budget_mode=exact,retention=0.3", 0.3),
}


def _env(root: Path) -> dict[str, str]:
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launcher(processes: int) -> list[str]:
    if processes == 1:
        return [sys.executable]
    port = str(_free_port())
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        str(processes),
        "--master_port",
        port,
    ]


def run(model: str, margs: str, out: Path, env: dict, processes: int) -> dict:
    """One ``python -m lmms_eval`` run: ``{ok, log, results, samples, stats, wall_s}``."""
    cmd = [*_launcher(processes), "-m", "lmms_eval", "--model", model, "--model_args", margs, "--tasks", TASK]
    cmd += ["--batch_size", "1", "--log_samples", "--output_path", str(out)]
    began = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=str(out.parent), capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - began
    files = glob.glob(str(out / "**" / "*_results.json"), recursive=True)
    if proc.returncode != 0 or len(files) != 1:  # lmms-eval exits 0 on failed runs: judge by the file
        return {"ok": False, "log": proc.stderr[-2000:], "wall_s": wall}
    results = json.loads(Path(files[0]).read_text())
    samples = {}
    for f in glob.glob(str(Path(files[0]).parent / f"*_samples_{TASK}.jsonl")):
        samples = {r["doc_id"]: r for r in map(json.loads, Path(f).read_text().splitlines()) if r}
    stats = []
    for f in sorted((out / "sttm_stats").glob("*_rank*.jsonl")):
        stats += [json.loads(line) for line in f.read_text().splitlines()]
    return {"ok": True, "results": results, "samples": samples, "stats": stats, "wall_s": wall}


def _untimed(results: dict) -> dict:
    values = results["results"][TASK]
    return {k: v for k, v in values.items() if not k.startswith(("ttft_ms", "merge_ms"))}


def _answers(r: dict) -> dict:
    qid = {d: s["sttm_acc"]["question_id"] for d, s in r["samples"].items()}
    return {qid[s["doc_id"]]: (s["answer"], s["visual_tokens"], s["visual_tokens_kept"]) for s in r["stats"]}


def same_results(a: dict, b: dict) -> bool:
    """Metrics equal (float means to 1e-12 relative: ranks sum in another order) and every
    question's (answer, tokens before, tokens after) equal."""
    x, y = _untimed(a["results"]), _untimed(b["results"])
    if x.keys() != y.keys():
        return False
    for k, v in x.items():
        w = y[k]
        if isinstance(v, float) and isinstance(w, float):
            if not (v == w or (math.isnan(v) and math.isnan(w)) or math.isclose(v, w, rel_tol=1e-12)):
                return False
        elif v != w:
            return False
    return _answers(a) == _answers(b)


def cell(method: str, arch: str, setting: str, r: dict, target: float | None) -> dict:
    """The JSON summary of one run."""
    line = {"method": method, "family": arch, "model": FAMILIES[arch], "setting": setting, "ok": r["ok"]}
    line["wall_s"] = round(r["wall_s"], 1)
    if not r["ok"]:
        return {**line, "log_tail": r["log"]}
    stats = r["stats"]
    shares = [s["visual_tokens_kept"] / s["visual_tokens"] for s in stats if s["visual_tokens"]]
    line.update(
        answers=len(stats),
        errors=sum(s["error"] is not None for s in stats),
        retained_mean=round(sum(shares) / len(shares), 4) if shares else None,
        retained_min=round(min(shares), 4) if shares else None,
        retained_max=round(max(shares), 4) if shares else None,
        accuracy=r["results"]["results"][TASK].get("sttm_acc,none"),
        prefix_reused=sum(bool(s.get("prefix_reused")) for s in stats),
        params={k: v for k, v in (stats[0]["params"] if stats else {}).items() if k != "pretrained"},
    )
    if target is not None:
        line["exact_within_1pt"] = bool(shares) and all(abs(s - target) <= 0.01 for s in shares)
    return line


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--methods", default=",".join(METHODS), help="any built-in methods (default: the 2025-26 ones)"
    )
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--settings", default=",".join(SETTINGS))
    ap.add_argument("--two-processes", default="exact30", help="settings also run in 2 processes ('' none)")
    ap.add_argument("--out", type=Path, default=None, help="write every cell as a JSON list")
    ap.add_argument("--workdir", type=Path, default=None, help="keep runs here (default: a temp dir)")
    ap.add_argument("--merge", type=Path, nargs="+", default=None, help="combine the output of earlier runs")
    args = ap.parse_args()
    if args.merge:
        cells = merge(args.merge)
        print(json.dumps({"summary": summarize(cells)}), flush=True)
        if args.out:
            args.out.write_text(json.dumps({"summary": summarize(cells), "cells": cells}, indent=1) + "\n")
        return
    from lmms_sttm.data.tiny import build_tiny

    methods = [m for m in args.methods.split(",") if m]
    archs = [a for a in args.families.split(",") if a]
    settings = [s for s in args.settings.split(",") if s]
    two = {s for s in args.two_processes.split(",") if s}
    from lmms_sttm.methods import registry

    unknown = (
        set(archs) - set(FAMILIES) | set(settings) - set(SETTINGS) | set(methods) - set(registry.BUILTIN)
    )
    if unknown:
        raise SystemExit(f"unknown: {sorted(unknown)}")
    with tempfile.TemporaryDirectory() as tmp:
        root = args.workdir or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        env, cells = _env(root), []
        for arch in archs:
            ckpt = build_tiny(arch, root / "tiny" / arch)
            for method in methods:
                for setting in settings:
                    extra, target = SETTINGS[setting]
                    margs = f"pretrained={ckpt},method={method},{extra}{FAMILY_ARGS.get(arch, '')}"
                    margs += METHOD_ARGS.get((arch, method), "")
                    base = root / "runs" / f"{arch}-{method}-{setting}"
                    base.mkdir(parents=True, exist_ok=True)
                    one = run(FAMILIES[arch], margs, base / "one", env, 1)
                    line = cell(method, arch, setting, one, target)
                    if setting in two and one["ok"]:
                        other = run(FAMILIES[arch], margs, base / "two", env, 2)
                        line["two_process_ok"] = other["ok"]
                        line["two_process_wall_s"] = round(other["wall_s"], 1)
                        ranks = {s.get("rank") for s in other.get("stats", [])}
                        line["two_process_ranks"] = sorted(ranks) if other["ok"] else None
                        line["one_equals_two"] = other["ok"] and same_results(one, other)
                        if not other["ok"]:
                            line["two_process_log_tail"] = other["log"]
                    print(json.dumps(line), flush=True)
                    cells.append(line)
    summary = summarize(cells)
    print(json.dumps({"summary": summary}), flush=True)
    if args.out:
        args.out.write_text(json.dumps({"summary": summary, "cells": cells}, indent=1) + "\n")


def summarize(cells: list[dict]) -> dict:
    """Counts over ``cells``: those that ran without a failed answer, exact ones within one point,
    two-process ones equal to their one-process run."""
    return {
        "cells": len(cells),
        "ok": sum(c["ok"] and c.get("errors") == 0 for c in cells),
        "exact_within_1pt": sum(bool(c.get("exact_within_1pt")) for c in cells),
        "exact_cells": sum("exact_within_1pt" in c for c in cells),
        "one_equals_two": sum(bool(c.get("one_equals_two")) for c in cells),
        "two_process_cells": sum("one_equals_two" in c for c in cells),
    }


def merge(logs: list[Path]) -> list[dict]:
    """The cells printed in ``logs`` (JSON lines with a ``method``), keyed by (method, family, setting)."""
    cells: dict[tuple, dict] = {}
    for log in logs:
        for line in log.read_text().splitlines():
            if line.startswith("{") and '"method"' in line:
                c = json.loads(line)
                cells[(c["method"], c["family"], c["setting"])] = c
    return list(cells.values())


if __name__ == "__main__":
    main()
