"""The held-out evaluation of several training draws: the demo's rows, run by run across the draws.

``python -m lmms_sttm.organism heldout --seeds 0 1 2`` evaluates each draw's checkpoint
(``CHECKPOINTS/seed_S``) on the held-out benchmark (``--per-family`` videos per family, 4 tries
each) for every row of the demo (:func:`lmms_sttm.demo.demo_runs`), through the demo's own
lmms-eval run (:func:`lmms_sttm.demo.run_lmms_eval`, same environment, same processes), into
``OUT/seed_S/runs/<tag>`` — the layout :func:`lmms_sttm.organism.draws.collect` reads. It goes
row by row, each row on every draw before the next row, and skips a (draw, row) whose results file
is already there: stopped at any point, the spread covers the rows finished on every draw, and a
rerun continues where it stopped. Then it writes ``draws.csv`` / ``draws.md`` (the spread).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from lmms_sttm.organism.draws import results_file

#: where the draws' checkpoints are committed (``seed_S`` each, with its ``training.json``)
CHECKPOINTS = "results/organism/draws/checkpoints"
#: where their held-out runs go (``seed_S/runs/<tag>``), and the spread (``draws.csv``, ``draws.md``)
OUT = "results/organism/draws"


def done(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds an lmms-eval results file."""
    return results_file(run_dir) is not None


def evaluate(
    seeds: list[int],
    checkpoints: str = CHECKPOINTS,
    out: str = OUT,
    per_family: int = 50,
    tags: list[str] | None = None,
    processes: int = 2,
    work: str = "work_dirs/organism_heldout",
    spread_out: str = "results/organism",
) -> int:
    """Run every (row, draw) not yet run, rows outermost; then the spread into ``spread_out``. Prints one
    JSON line per run (tag, seed, seconds). Returns 1 when a run failed (the others still run)."""
    from lmms_sttm.demo import (
        EXAMPLE_METHOD,
        RunFailed,
        demo_runs,
        install_example,
        relativize,
        run_env,
        run_lmms_eval,
    )
    from lmms_sttm.organism.bench import write_benchmark
    from lmms_sttm.organism.draws import write_summary

    root, work_dir = Path.cwd().absolute(), Path(work).absolute()
    data_root = work_dir / "datasets"
    write_benchmark(data_root, per_family)
    failed = 0
    site = None
    for seed in seeds:
        ckpt = Path(checkpoints) / f"seed_{seed}"
        if not (ckpt / "model.safetensors").is_file():
            print(f"[heldout] no checkpoint {ckpt}", file=sys.stderr)
            return 1
    rows = demo_runs("CKPT")
    if tags:
        unknown = sorted(set(tags) - {t for t, _ in rows})
        if unknown:
            print(f"[heldout] unknown run tags {unknown}", file=sys.stderr)
            return 1
        rows = [r for r in rows if r[0] in tags]
    for tag, args in rows:
        for seed in seeds:
            run_dir = Path(out).absolute() / f"seed_{seed}" / "runs" / tag
            if done(run_dir):
                continue
            if site is None and f"method={EXAMPLE_METHOD}," in args:
                site = install_example(work_dir / "example_site")
            ckpt = os.path.relpath(Path(checkpoints).absolute() / f"seed_{seed}", root)
            t0 = time.time()
            try:
                run_lmms_eval(
                    args.replace("CKPT", ckpt), run_dir, run_env(root, data_root, work_dir, site), processes
                )
            except RunFailed as e:
                print(f"[heldout] {tag} seed {seed} FAILED: {e}", file=sys.stderr, flush=True)
                failed = 1
                continue
            print(json.dumps({"tag": tag, "seed": seed, "seconds": round(time.time() - t0, 1)}), flush=True)
    relativize(Path(out).absolute(), root)
    summary = write_summary(out, spread_out)
    if summary:
        print(f"[heldout] {summary}")
    return failed
