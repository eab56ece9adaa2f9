"""The main job: the model organism end to end through lmms-eval to a leaderboard, offline.

``python -m lmms_sttm.demo`` writes the organism's held-out VNBench-format
benchmark (:mod:`lmms_sttm.organism.bench`; ``--per-family`` videos of each of its three
families, 4 tries each), runs ``accelerate launch -m lmms_eval --model llava_video_sttm`` with
the committed organism checkpoint (LLaVA-NeXT format, converted on load) unreduced, with STTM and
with every baseline (two CPU processes), and writes the leaderboard with per-family accuracies.
Paths in everything written under ``--out`` are relative to the repository. Without ``--out``
the output goes to a fresh folder ``work_dirs/demo/out_<date>_<time>`` (printed at the start
and the end); ``--out results/demo`` refreshes the committed output. ``--report-only`` rebuilds
the leaderboard from the runs already under ``--out``.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lmms_sttm.example_method import NAME as EXAMPLE_METHOD
from lmms_sttm.example_method import install_example
from lmms_sttm.organism.bench import write_benchmark
from lmms_sttm.organism.clips import FAMILIES
from lmms_sttm.report.ttft_spread import spread

TASK = "vnbench_sttm"
CHECKPOINT = "lmms_sttm/organism/weights"  # relative to the repository root (the demo's working dir)
#: the committed held-out evaluation of several training draws (lmms_sttm.organism.draws)
DRAWS_CSV = "results/organism/draws.csv"
BASELINES = (
    "tome", "dycoke_stage1", "dycoke", "fastv", "framefusion", "pool",
    "evs", "vidcom2", "fastvid", "holitom", "flashvid",
)  # fmt: skip


def caveat(per_family: int) -> str:
    """What the organism's leaderboard does and does not say, for ``per_family`` videos per family."""
    videos = (
        f"each row here is {3 * per_family} videos x 4 tries ({per_family} videos per family: one video is "
        f"{100 / per_family:.3g} points of a family's accuracy)"
    )
    return CAVEAT.replace("{videos}", videos)


CAVEAT = (
    "The model is the project's model organism (`lmms_sttm/organism/`, docs/organism.md): a "
    "0.6 M-parameter LLaVA-Video-format model (8-layer Qwen2 decoder of width 64, frozen random SigLIP-style "
    "tower, 49 tokens per frame, 16 frames = 784 visual tokens) trained on CPU on procedural needle clips: "
    "retrieval (which object the inserted frame shows), ordering (which of two inserted frames comes first) "
    "and counting (how many inserted frames), with moving distractors and scene cuts. Half of its training "
    "steps showed a random 15-100% of the visual tokens, the reply placed after the position gap the STTM "
    "authors' decoding leaves: it tolerates a shorter sequence by construction (trained without that, it "
    "answered at chance under every reduction), which says nothing of how robust real models are. What it "
    "says: whether a reduction keeps the few needle tokens a question depends on, through the real lmms-eval "
    "path (positions, "
    "masks, cache, prefix reuse), and what the reduction saves when the LLM prefill dominates (CPU; TTFT "
    "excludes the vision tower; time ratios on a shared 2-core machine are noisy: its speed changes from run to "
    'run, see the control column under "Prefill time"). '
    "What it does not say: anything about real video LLMs' accuracy or the methods' ranking on them. Its "
    "needles are solid full frames (a merge that keeps one token per distinct frame loses nothing), its other "
    "frames are few and mostly redundant, it is 10,000 times smaller than LLaVA-Video-7B, and {videos}. "
    "The paper's `budget=` thresholds were "
    "tuned on LLaVA-Video-7B's features; on the organism they keep the share shown in R.NV, not 50%/30%, "
    "while the `budget_mode=exact` rows keep exactly the stated share."
)

TIMING_NOTE = (
    "R.TTFT = 100 x mean prefill time (merge included, vision tower excluded) / the unreduced run's, over "
    "the questions both runs prefilled their video for (one per video and process; later tries reuse the "
    "prefix); the 90% interval resamples those questions in pairs (seeded bootstrap), so it shows the "
    "question-to-question spread within this run, not a whole run being slower on a busy machine. That is "
    "what the control shows: 100 x the run's median vision-tower time / the unreduced run's, the same work "
    "in both (same frames, same tower), so far from 100 the machine ran at another speed during one of the "
    "two runs and the R.TTFT is off by about that factor. Rerunning only some rows: `bash scripts/demo.sh "
    "--runs none,sttm_exact30 --out DIR`."
)


def findings(
    leaderboard_csv: Path, runs: list[tuple[str, str]] | None = None, spread: dict | None = None
) -> str:
    """A paragraph of what this run measured: the unreduced accuracy, and per retention band (the
    rows' R.NV near 50%, 30%, 15% or below 10%) each row's accuracy, accuracy kept (R.Acc) and
    prefill time (R.TTFT), rows in tag order; then the orders that hold
    (:func:`lmms_sttm.organism.claims.order_holds`: beyond both rows' 95% intervals and beyond the
    spread across the training draws of ``spread``, :func:`lmms_sttm.organism.draws.read_spread`).
    No other order is stated. Empty when there is no unreduced row."""
    import csv

    from lmms_sttm.organism.claims import claim_text, holding_orders, row_key, row_numbers

    runs = demo_runs() if runs is None else runs
    spread = spread or {}
    with leaderboard_csv.open(newline="") as f:
        rows = list(csv.DictReader(f))
    ref = next((r for r in rows if r["method"] == "none"), None)
    if ref is None:
        return ""
    numbers = row_numbers(runs, leaderboard_csv, spread)
    key_tag = {row_key(args): tag for tag, args in runs}
    seeds = sorted({s for n in numbers.values() for s in n.draws})
    parts = [
        f"Measured in this run: the unreduced organism answers {float(ref['avg_acc']):.1f}% of the tries (chance: 25%)."
    ]
    if seeds:
        parts.append(
            f"An order between two rows is stated only where it holds beyond both rows' 95% intervals here and on "
            f"each of the {len(seeds)} training draws' held-out evaluations (the lower row's best draw below the "
            "upper row's worst); the rows of a band are otherwise listed in tag order, not ranked."
        )
    else:
        parts.append(
            "No held-out evaluation of several training draws was found, so no order between rows is stated."
        )
    bands = [("about 50%", 40, 60), ("about 30%", 22, 40), ("about 15%", 10, 22), ("under 10%", 0, 10)]
    for name, lo, hi in bands:
        band = [r for r in rows if r["r_nv"] and lo <= float(r["r_nv"]) < hi]
        if not band:
            continue
        band.sort(key=lambda r: key_tag.get((r["method"], r["setting"]), f"{r['method']} {r['setting']}"))
        cells = ", ".join(
            f"{r['method']} [{r['setting']}] {float(r['avg_acc']):.1f}% (R.Acc {float(r['r_acc']):.0f}, "
            f"R.TTFT {float(r['r_ttft']):.0f})"
            for r in band
        )
        parts.append(f"Keeping {name} of the tokens: {cells}.")
        tags = [key_tag[(r["method"], r["setting"])] for r in band if (r["method"], r["setting"]) in key_tag]
        orders = holding_orders([numbers[t] for t in tags if t in numbers]) if seeds else []
        if orders:
            parts.append("Beyond the noise: " + "; ".join(claim_text(x, y) for x, y in orders) + ".")
        elif seeds:
            parts.append("No order in this band is beyond the noise.")
    return " ".join(parts)


def spread_table(runs: list[tuple[str, str]], leaderboard_csv: Path, spread: dict) -> str:
    """Markdown: per demo row, this run's accuracy with its 95% interval next to the held-out
    accuracy across training draws (mean, min-max, each draw; per family mean and min-max).
    Empty without ``spread`` (:func:`lmms_sttm.organism.draws.read_spread`)."""
    from lmms_sttm.organism.claims import row_numbers
    from lmms_sttm.organism.draws import ALL

    if not spread:
        return ""
    numbers = row_numbers(runs, leaderboard_csv, spread)
    seeds = sorted({s for (_, fam), v in spread.items() if fam == ALL for s in v["draws"]})
    head = ["run", "this run [95%]", "draws: mean (min–max)", *[f"seed {s}" for s in seeds],
            *[f"{f}: mean (min–max)" for f in FAMILIES]]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for tag, _ in runs:
        n = numbers.get(tag)
        if n is None:
            continue
        row = [tag, f"{n.acc:.1f} [{n.low:.1f}, {n.high:.1f}]"]
        whole = spread.get((tag, ALL))
        if whole is None:
            row += ["not evaluated", *["—"] * len(seeds), *["—"] * len(FAMILIES)]
        else:
            row.append(f"{whole['mean']:.1f} ({whole['min']:.1f}–{whole['max']:.1f})")
            row += [f"{whole['draws'][s]:.1f}" if s in whole["draws"] else "—" for s in seeds]
            for fam in FAMILIES:
                v = spread.get((tag, fam))
                row.append("—" if v is None else f"{v['mean']:.1f} ({v['min']:.1f}–{v['max']:.1f})")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def demo_runs(checkpoint: str = CHECKPOINT) -> list[tuple[str, str]]:
    """``(tag, model_args)`` of every row of the demo leaderboard (model ``llava_video_sttm``)."""
    base = f"pretrained={checkpoint}"
    runs = [
        ("none", f"{base},method=none"),
        ("sttm_budget50", f"{base},method=sttm,budget=50"),
        ("sttm_budget30", f"{base},method=sttm,budget=30"),
    ]
    runs += [
        (f"sttm_exact{r}", f"{base},method=sttm,budget_mode=exact,retention=0.{r}")
        for r in ("50", "30", "15")
    ]
    for m in BASELINES:
        runs += [(f"{m}_budget{b}", f"{base},method={m},budget={b}") for b in (50, 30)]
    # a method from another package, found through its entry point (examples/l2keep)
    runs += [(f"{EXAMPLE_METHOD}_exact30", f"{base},method={EXAMPLE_METHOD},budget_mode=exact,retention=0.3")]
    return runs


#: the Qwen3-VL section: a tiny random-weight Qwen3-VL (DeepStack, frame blocks) on the same questions
QWEN3_VL = "qwen3_vl_sttm"
QWEN3_VL_NOTE = (
    "The same questions through `qwen3_vl_sttm` on a tiny Qwen3-VL with random weights "
    "(`python -m lmms_sttm.data.tiny --arch qwen3_vl`: timestamped frame blocks, DeepStack after LLM "
    "layers 0-2, merging at layer 3). It checks that every method runs on the frame-block layout with "
    "exact budgets; its accuracies are those of an untrained model (chance or below), not a comparison "
    "of methods."
)


def qwen3_vl_runs(checkpoint: str) -> list[tuple[str, str]]:
    """``(tag, model_args)`` of the Qwen3-VL section (model ``qwen3_vl_sttm``): unreduced, STTM and
    every baseline at an exact 30% (the paper tuned no thresholds for Qwen3-VL)."""
    base = f"pretrained={checkpoint}"
    runs = [("qwen3vl_none", f"{base},method=none")]
    for m in ("sttm", *BASELINES):
        runs.append((f"qwen3vl_{m}_exact30", f"{base},method={m},budget_mode=exact,retention=0.3"))
    return runs


#: the Qwen3.5 section: a tiny random-weight hybrid (Gated DeltaNet + full attention) on the same questions
QWEN3_5 = "qwen3_5_sttm"
QWEN3_5_NOTE = (
    "The same questions through `qwen3_5_sttm` on a tiny Qwen3.5 with random weights "
    "(`python -m lmms_sttm.data.tiny --arch qwen3_5`: 8 decoder layers, Gated DeltaNet except full "
    "attention at layers 3 and 7, timestamped frame blocks, merging at layer 2), thinking off "
    "(`enable_thinking=false`: an untrained model never closes a thinking block). HoliTom's and "
    "FlashVID's inner stages run at layer 4, reading layer 3 (their default layers, 18 and 20 of 28 "
    "scaled, would read layer 7, the last). It checks that every method runs on the hybrid decoder "
    "with exact budgets and prefix reuse; its accuracies are those of an untrained model, not a "
    "comparison of methods."
)
#: the tiny hybrid's inner-stage layers (see QWEN3_5_NOTE)
QWEN3_5_LAYERS = {"holitom": ",inner_layer=4", "flashvid": ",prune_layer=4"}


def qwen3_5_runs(checkpoint: str) -> list[tuple[str, str]]:
    """``(tag, model_args)`` of the Qwen3.5 section (model ``qwen3_5_sttm``, thinking off): unreduced,
    STTM and every baseline at an exact 30% (no published thresholds for Qwen3.5)."""
    base = f"pretrained={checkpoint},enable_thinking=false"
    runs = [("qwen35_none", f"{base},method=none")]
    for m in ("sttm", *BASELINES):
        extra = QWEN3_5_LAYERS.get(m, "")
        runs.append((f"qwen35_{m}_exact30", f"{base},method={m},budget_mode=exact,retention=0.3{extra}"))
    return runs


@dataclass(frozen=True)
class Side:
    """A side section: a tiny random checkpoint of another family on the same questions, in
    ``runs_<name>`` / ``leaderboard_<name>`` under ``--out`` (checkpoint: ``<work>/<name>_tiny``)."""

    name: str
    model: str
    heading: str
    note: str
    runs: Callable[[str], list[tuple[str, str]]]


SIDES = (
    Side("qwen3_vl", QWEN3_VL, "Qwen3-VL: the frame-block pipeline", QWEN3_VL_NOTE, qwen3_vl_runs),
    Side("qwen3_5", QWEN3_5, "Qwen3.5: the hybrid linear-attention pipeline", QWEN3_5_NOTE, qwen3_5_runs),
)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunFailed(RuntimeError):
    """An lmms-eval run left no results file (its log's last lines are in the message)."""


def run_lmms_eval(
    model_args: str, out: Path, env: dict, processes: int, model: str = "llava_video_sttm"
) -> Path:
    """One ``accelerate launch -m lmms_eval`` run (cwd: the repository); returns its results file."""
    if out.exists():
        shutil.rmtree(out)
    launch = [sys.executable, "-m", "accelerate.commands.launch"]
    if processes > 1:
        launch += ["--multi_gpu", "--num_processes", str(processes), "--main_process_port", str(_port())]
    else:
        launch += ["--num_processes", "1"]
    cmd = [*launch, "-m", "lmms_eval", "--model", model, "--tasks", TASK, "--batch_size", "1"]
    cmd += ["--model_args", model_args, "--log_samples", "--output_path", os.path.relpath(out)]
    cmd += ["--verbosity", "WARNING"]
    log = out.parent / f"{out.name}.log"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:
        proc = subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT)
    found = glob.glob(str(out / "**" / "*_results.json"), recursive=True)
    if proc.returncode != 0 or not found:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-40:])
        raise RunFailed(
            f"lmms-eval run failed (exit {proc.returncode}, results file {'present' if found else 'missing'}); "
            f"last lines of {os.path.relpath(log)}:\n{tail}\ncommand: {' '.join(cmd)}"
        )
    return Path(found[0])


def run_env(root: Path, data_root: Path, work: Path, site: Path | None) -> dict:
    """The environment of the demo's lmms-eval runs: offline, CPU, one thread per process, the held-out
    benchmark under ``data_root``, the repository ``root`` (and the example method's ``site``) importable."""
    env = dict(os.environ)
    env.update(
        LMMS_STTM_DATA_ROOT=os.path.relpath(data_root), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1", HF_HOME=str(work / "hf"), ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false", WANDB_MODE="disabled", PYTHONPATH=os.pathsep.join(
            [str(root), *([str(site)] if site else []), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
        ),
    )  # fmt: skip
    return env


def relativize(tree: Path, root: Path) -> int:
    """Rewrite every text file under ``tree`` so that no absolute path of ``root`` remains; returns the count."""
    prefix, changed = str(root), 0
    for path in tree.rglob("*"):
        if not path.is_file() or path.suffix not in (
            ".json",
            ".jsonl",
            ".log",
            ".md",
            ".csv",
            ".html",
            ".txt",
        ):
            continue
        text = path.read_text(errors="replace")
        if prefix in text:
            path.write_text(text.replace(prefix + "/", "").replace(prefix, "."))
            changed += 1
    return changed


def family_table(runs_dir: Path, tags: list[str]) -> str:
    """Markdown: per run, per-try accuracy per family, their mean, and the official circular accuracy."""
    head = ["run", *FAMILIES, "mean", *[f"{f} (circular)" for f in FAMILIES], "official (circular)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for tag in tags:
        found = glob.glob(str(runs_dir / tag / "**" / "*_results.json"), recursive=True)
        if not found:
            continue
        res = json.loads(Path(found[0]).read_text())["results"][TASK]
        off = res.get("official_acc,none")
        old = res.get("breakdown,none") or {}  # results written before the groups became metrics
        per = [res.get(f"acc_task_type={f},none", old.get("task_type", {}).get(f)) for f in FAMILIES]
        circ = [
            res.get(f"circular_task_type={f},none", old.get("task_type_circular", {}).get(f))
            for f in FAMILIES
        ]
        mean = sum(per) / len(per) if None not in per else None
        cells = [tag, *per, mean, *circ, off]
        lines.append(
            "| "
            + " | ".join(c if isinstance(c, str) else "—" if c is None else f"{c:.1f}" for c in cells)
            + " |"
        )
    return "\n".join(lines) + "\n"


def videos_per_family(runs_dir: Path, tags: list[str]) -> int:
    """Videos per family of the runs under ``runs_dir`` (their questions / 12: 3 families x 4 tries)."""
    for tag in tags:
        found = glob.glob(str(runs_dir / tag / "**" / "*_results.json"), recursive=True)
        if found:
            n = json.loads(Path(found[0]).read_text())["n-samples"][TASK]["effective"]
            return n // (4 * len(FAMILIES))
    raise SystemExit(f"no results files under {runs_dir}")


def timing_table(runs_dir: Path, tags: list[str]) -> str:
    """Markdown: per reduced run, R.TTFT against the unreduced run with its question-to-question spread.

    Empty without an unreduced (``none``) run's statistics. See :mod:`lmms_sttm.report.ttft_spread`.
    """
    ref = runs_dir / "none" / "sttm_stats"
    if not ref.is_dir():
        return ""
    head = ["run", "questions", "R.TTFT (means)", "90% interval", "R.TTFT (medians)", "median prefill ms",
            "unreduced median ms", "median merge ms", "vision-tower time (control)"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for tag in tags:
        if tag == "none" or not (runs_dir / tag / "sttm_stats").is_dir():
            continue
        sp = spread(runs_dir / tag / "sttm_stats", ref)
        if sp is None:
            continue
        merge = "—" if sp.median_merge_ms is None else f"{sp.median_merge_ms:.1f}"
        control = "—" if sp.vision_ratio is None else f"{sp.vision_ratio:.0f}"
        cells = [tag, str(sp.questions), f"{sp.ratio_of_means:.0f}", f"{sp.low:.0f}-{sp.high:.0f}",
                 f"{sp.ratio_of_medians:.0f}", f"{sp.median_ms:.1f}", f"{sp.reference_median_ms:.1f}", merge, control]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lmms_sttm.demo", description=__doc__.splitlines()[0])
    p.add_argument(
        "--out",
        default=None,
        help="where runs and the leaderboard go (default: a fresh work_dirs/demo/out_<date>_<time>; "
        "results/demo refreshes the committed output)",
    )
    p.add_argument(
        "--report-only", action="store_true", help="rebuild the leaderboard from the runs under --out"
    )
    p.add_argument("--work", default="work_dirs/demo", help="data root and caches (not committed)")
    p.add_argument("--checkpoint", default=CHECKPOINT, help="the organism checkpoint folder")
    p.add_argument("--processes", type=int, default=2, help="lmms-eval processes per run (CPU, gloo)")
    p.add_argument("--per-family", type=int, default=4, help="held-out videos per family (4 tries each)")
    p.add_argument("--runs", default="all", help="comma-separated run tags (default: all)")
    p.add_argument(
        "--draws",
        default=DRAWS_CSV,
        help="held-out accuracies of several training draws (draws.csv) shown next to each row; 'none': no spread",
    )
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    command = " ".join(["python -m lmms_sttm.demo", *(sys.argv[1:] if argv is None else argv)])
    if args.out is None:
        if args.report_only:
            p.error("--report-only needs --out (the folder holding the runs)")
        args.out = os.path.join(args.work, time.strftime("out_%Y%m%d_%H%M%S"))
    root = Path.cwd().absolute()
    out, work = Path(args.out).absolute(), Path(args.work).absolute()
    print(f"[demo] output folder: {os.path.relpath(out)}", flush=True)
    began = time.time()
    data_root = work / "datasets"
    runs = demo_runs(args.checkpoint)
    sides = {side: side.runs(os.path.relpath(work / f"{side.name}_tiny")) for side in SIDES}
    if args.report_only:
        sides = {
            side: [r for r in rs if (out / f"runs_{side.name}" / r[0]).is_dir()] for side, rs in sides.items()
        }
        runs = [r for r in runs if (out / "runs" / r[0]).is_dir()]
        args.per_family = videos_per_family(out / "runs", [t for t, _ in runs])
    else:
        write_benchmark(data_root, args.per_family)
    if args.runs != "all":
        wanted = args.runs.split(",")
        known = {t for t, _ in runs} | {t for rs in sides.values() for t, _ in rs}
        unknown = sorted(set(wanted) - known)
        if unknown:
            p.error(f"unknown run tags {unknown}; known: {', '.join(sorted(known))}")
        runs = [r for r in runs if r[0] in wanted]
        sides = {side: [r for r in rs if r[0] in wanted] for side, rs in sides.items()}
        if not runs and not (out / "runs").is_dir():
            p.error(
                "the leaderboard needs main runs: add one of them to --runs (e.g. none), or use an --out holding them"
            )
    print(
        f"[demo] checkpoint {args.checkpoint}; {3 * 4 * args.per_family} questions; {len(runs)} runs",
        flush=True,
    )

    # the out-of-tree example method, installed as a package when a run uses it
    site = (
        install_example(work / "example_site")
        if any(f"method={EXAMPLE_METHOD}," in a for _, a in runs)
        else None
    )
    env = run_env(root, data_root, work, site)
    for tag, model_args in [] if args.report_only else runs:
        t0 = time.time()
        try:
            results = run_lmms_eval(model_args, out / "runs" / tag, env, args.processes)
        except RunFailed as e:
            print(f"[demo] {tag} FAILED: {e}", file=sys.stderr, flush=True)
            return 1
        print(f"[demo] {tag:>20}: {time.time() - t0:5.1f} s -> {results.relative_to(out)}", flush=True)
    for side, side_runs in sides.items():
        if side_runs and not args.report_only and not (work / f"{side.name}_tiny").is_dir():
            from lmms_sttm.data.tiny import build_tiny

            build_tiny(side.name, work / f"{side.name}_tiny")
        for tag, model_args in [] if args.report_only else side_runs:
            t0 = time.time()
            try:
                results = run_lmms_eval(
                    model_args, out / f"runs_{side.name}" / tag, env, args.processes, side.model
                )
            except RunFailed as e:
                print(f"[demo] {tag} FAILED: {e}", file=sys.stderr, flush=True)
                return 1
            print(f"[demo] {tag:>20}: {time.time() - t0:5.1f} s -> {results.relative_to(out)}", flush=True)

    board = out / "leaderboard"
    report = [
        sys.executable,
        "-m",
        "lmms_sttm.report",
        os.path.relpath(out / "runs"),
        "--out",
        os.path.relpath(board),
    ]
    proc = subprocess.run([*report, "--breakdowns"], env=env)
    if proc.returncode != 0:
        print(f"[demo] the report failed (exit {proc.returncode}): {' '.join(report)}", file=sys.stderr)
        return 1
    sections = ""
    for side, side_runs in sides.items():
        if not side_runs:
            continue
        board_cmd = [
            *report[:3],
            os.path.relpath(out / f"runs_{side.name}"),
            "--out",
            os.path.relpath(out / f"leaderboard_{side.name}"),
        ]
        if subprocess.run(board_cmd, env=env).returncode != 0:
            print(
                f"[demo] the {side.heading.split(':')[0]} report failed: {' '.join(board_cmd)}",
                file=sys.stderr,
            )
            return 1
        rows = family_table(out / f"runs_{side.name}", [t for t, _ in side_runs])
        sections += (
            f"\n## {side.heading}\n\n{side.note}\n\n{rows}\n"
            f"Leaderboard: `../leaderboard_{side.name}/leaderboard.md`.\n"
        )
    table = family_table(out / "runs", [t for t, _ in runs])
    (board / "families.md").write_text(f"# Accuracy per family (%)\n\n{table}")
    timing = timing_table(out / "runs", [t for t, _ in runs])
    if timing:
        timing = f"\n## Prefill time against the unreduced run\n\n{TIMING_NOTE}\n\n{timing}"
    seconds = time.time() - began
    made = (
        f"Made by `{command}` ({len(runs)} runs, {3 * args.per_family} videos x 4 tries, "
        f"{args.processes} CPU processes, {seconds:.0f} s)"
        if not args.report_only
        else f"Leaderboard rebuilt by `{command}` from {len(runs)} runs ({3 * args.per_family} videos x 4 tries); "
        "each run's own command is in `runs.csv`"
    )
    spread = {}
    if args.draws != "none" and Path(args.draws).is_file():
        from lmms_sttm.organism.draws import read_spread

        spread = read_spread(args.draws)
    across = spread_table(runs, board / "leaderboard.csv", spread)
    if across:
        across = (
            "\n## Accuracy across training draws (%)\n\nThis run's organism is one training draw; "
            f"`{os.path.relpath(Path(args.draws).absolute(), root)}` holds the held-out evaluation of several draws "
            "(same command, other seeds; `results/organism/draws.md`). Next to each row: this run's per-try "
            "accuracy with its 95% interval, and the held-out accuracy across draws (mean, min–max, each draw, "
            f"per family).\n\n{across}"
        )
    (board / "README.md").write_text(
        f"# Demo leaderboard\n\n{caveat(args.per_family)}\n\n"
        f"{findings(board / 'leaderboard.csv', runs, spread)}\n\n"
        "## Accuracy per family (%)\n\nPer-try accuracy per family, "
        f"and VNBench's official circular accuracy (an item counts only when all 4 tries are right).\n\n{table}\n"
        f"{made}. Leaderboard: `leaderboard.md`; plots: `index.html`.\n"
        f"{across}{timing}{sections}"
    )
    relativize(out, root)
    print(f"[demo] leaderboard: {os.path.relpath(board)}  ({seconds:.0f} s in all)", flush=True)
    print(f"[demo] output folder: {os.path.relpath(out)}", flush=True)
    print(table, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
