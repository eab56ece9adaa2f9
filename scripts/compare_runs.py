"""Per-sample answers and statistics of two run folders, run by run (e.g. the demo on two revisions).

    .venv/bin/python scripts/compare_runs.py BEFORE/runs AFTER/runs [TAG ...]

Each ``TAG`` is a run folder under both roots (default: every folder present under both). Compared
per document: lmms-eval's filtered answer, and from the statistics files the answer, visual tokens
before and after, DyCoke's per-step KV counts, the recorded parameters, the error and whether the
prefix was reused (timings are left out: they differ run to run). Prints JSON; exits 1 on a difference.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

KEYS = ("answer", "visual_tokens", "visual_tokens_kept", "kv_video_kept", "params", "error", "prefix_reused")


def load(run: Path) -> tuple[dict, dict]:
    """``(doc_id -> filtered answer, doc_id -> statistics fields)`` of one run folder."""
    samples = {}
    for f in run.glob("**/*_samples_*.jsonl"):
        for line in f.read_text().splitlines():
            row = json.loads(line)
            samples[row["doc_id"]] = row["filtered_resps"]
    stats = {}
    for f in (run / "sttm_stats").glob("*_rank*.jsonl"):
        for line in f.read_text().splitlines():
            row = json.loads(line)
            stats[row["doc_id"]] = {k: row.get(k) for k in KEYS}
    return samples, stats


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    before, after = Path(argv[0]), Path(argv[1])
    tags = argv[2:] or sorted(p.name for p in before.iterdir() if p.is_dir() and (after / p.name).is_dir())
    runs = {}
    for tag in tags:
        a, b = load(before / tag), load(after / tag)
        docs = sorted(set(a[1]) | set(b[1]))
        differ = [d for d in docs if a[1].get(d) != b[1].get(d) or a[0].get(d) != b[0].get(d)]
        runs[tag] = {"answers": len(b[0]), "stats_rows": len(b[1]), "different_docs": differ[:10]}
    same = [t for t, r in runs.items() if not r["different_docs"] and r["answers"]]
    print(json.dumps({"runs": len(runs), "identical": len(same), "per_run": runs}, indent=1))
    return 0 if len(same) == len(runs) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
