"""The numbers the docs quote from committed results, regenerated and checked.

A number in ``README.md`` or ``docs/*.md`` that comes from a committed result is written as
``<!--n:KEY-->VALUE<!--/n-->`` (the comments do not render). :func:`values` computes every KEY
from the committed files (``results/demo``, ``results/organism``, the organism's
``training.json``); ``--check`` (the default; ``tests/unit/test_docs_numbers.py`` runs it) exits 1
naming each stale or unknown number, ``--write`` rewrites the values in place. After the demo
is rerun (``bash scripts/demo.sh --out results/demo``): ``.venv/bin/python scripts/docs_numbers.py --write``.

    .venv/bin/python scripts/docs_numbers.py [--check | --write]
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "docs/*.md")
MARK = re.compile(r"<!--n:([\w.=-]+)-->(.*?)<!--/n-->")
#: row tags of the leaderboards -> (method, setting label) in leaderboard.csv
ROWS = {
    "none": ("none", "default"),
    "sttm_budget50": ("sttm", "budget=50"),
    "sttm_budget30": ("sttm", "budget=30"),
    "sttm_exact50": ("sttm", "budget_mode=exact,retention=0.5"),
    "sttm_exact30": ("sttm", "budget_mode=exact,retention=0.3"),
    "sttm_exact15": ("sttm", "budget_mode=exact,retention=0.15"),
    **{f"{m}_budget{b}": (m, f"budget={b}") for m in ("tome", "dycoke_stage1", "dycoke", "fastv", "framefusion", "pool")
       for b in (50, 30)},
}  # fmt: skip
FAMILIES = ("ret_insert1", "ord_insert1", "cnt_insert1")


def _num(text: str, digits: int) -> str:
    return f"{float(text):.{digits}f}" if text not in ("", None) else "—"


def leaderboard_values(prefix: str, board: Path) -> dict[str, str]:
    """``<prefix>.<tag>.<field>`` from one leaderboard.csv (accuracy, its 95% interval, R.NV, R.TTFT, ...)."""
    out = {}
    with (board / "leaderboard.csv").open(newline="") as f:
        rows = {(r["method"], r["setting"]): r for r in csv.DictReader(f)}
    for tag, key in ROWS.items():
        r = rows.get(key)
        if r is None:
            continue
        p = f"{prefix}.{tag}"
        out[f"{p}.acc"] = _num(r["avg_acc"], 1)
        if r.get("avg_acc_ci95_low"):
            out[f"{p}.acc_ci"] = f"{_num(r['avg_acc_ci95_low'], 1)}–{_num(r['avg_acc_ci95_high'], 1)}"
        if tag != "none":
            out[f"{p}.r_acc"] = _num(r["r_acc"], 0)
            out[f"{p}.r_nv"] = _num(r["r_nv"], 1)
            out[f"{p}.r_ttft"] = _num(r["r_ttft"], 0)
            if r.get("r_ttft_ci90_low"):
                out[f"{p}.r_ttft_ci"] = f"{_num(r['r_ttft_ci90_low'], 0)}–{_num(r['r_ttft_ci90_high'], 0)}"
            if r.get("speed_control"):
                out[f"{p}.control"] = _num(r["speed_control"], 0)
    return out


def run_values(prefix: str, runs: Path) -> dict[str, str]:
    """``<prefix>.<tag>.<family>`` (per-try accuracy per family), ``.circular`` and ``<prefix>.questions``."""
    out = {}
    for tag in ROWS:
        found = glob.glob(str(runs / tag / "**" / "*_results.json"), recursive=True)
        if not found:
            continue
        data = json.loads(Path(found[0]).read_text())
        res = data["results"]["vnbench_sttm"]
        old = res.get("breakdown,none") or {}  # results written before the breakdown groups became metrics
        for fam in FAMILIES:
            value = res.get(f"acc_task_type={fam},none", (old.get("task_type") or {}).get(fam))
            out[f"{prefix}.{tag}.{fam}"] = f"{value:.1f}"
        out[f"{prefix}.{tag}.circular"] = f"{res['official_acc,none']:.1f}"
        n = data["n-samples"]["vnbench_sttm"]["effective"]
        out[f"{prefix}.questions"] = str(n)
        out[f"{prefix}.videos"] = str(n // 4)
        out[f"{prefix}.videos_per_family"] = str(n // 4 // len(FAMILIES))
    return out


def training_values() -> dict[str, str]:
    data = json.loads((ROOT / "lmms_sttm/organism/weights/training.json").read_text())
    return {
        "training.steps": str(data["steps"]),
        "training.seed": str(data["seed"]),
        "training.seconds": f"{data['seconds']:.0f}",
        "training.bank": str(data["bank"]),
    }


def draws_values() -> dict[str, str]:
    """``draws.<tag>.<family>.mean`` / ``.range`` / ``.seed_S``: the held-out accuracy across training
    draws (``results/organism/draws.csv``; family ``all`` for the three together)."""
    path = ROOT / "results" / "organism" / "draws.csv"
    if not path.is_file():
        return {}
    out = {}
    with path.open(newline="") as f:
        for r in csv.DictReader(f):
            p = f"draws.{r['tag']}.{r['family']}"
            out[f"{p}.mean"] = _num(r["mean"], 1)
            out[f"{p}.range"] = f"{_num(r['min'], 1)}–{_num(r['max'], 1)}"
            for k, v in r.items():
                if k.startswith("acc_seed_"):
                    out[f"{p}.seed_{k.removeprefix('acc_seed_')}"] = _num(v, 1)
    return out


def lock_values() -> dict[str, str]:
    """``lock.packages``: the distributions pinned in requirements.lock."""
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    return {
        "lock.packages": str(sum(1 for line in lines if "==" in line and not line.lstrip().startswith("#")))
    }


def values() -> dict[str, str]:
    out = {**training_values(), **lock_values(), **draws_values()}
    for prefix in ("demo", "organism"):
        out.update(leaderboard_values(prefix, ROOT / "results" / prefix / "leaderboard"))
        out.update(run_values(prefix, ROOT / "results" / prefix / "runs"))
    return out


def doc_files() -> list[Path]:
    return sorted({p for pattern in DOCS for p in ROOT.glob(pattern)})


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--write", action="store_true", help="rewrite the marked numbers in place")
    args = p.parse_args(argv)
    vals, problems, marks = values(), [], 0
    for path in doc_files():
        text = path.read_text(encoding="utf-8")

        def fix(m: re.Match, path=path) -> str:
            nonlocal marks
            marks += 1
            key, shown = m.group(1), m.group(2)
            if key not in vals:
                problems.append(f"{path.relative_to(ROOT)}: unknown number {key!r}")
                return m.group(0)
            if shown != vals[key]:
                problems.append(
                    f"{path.relative_to(ROOT)}: {key} reads {shown!r}, the committed results give {vals[key]!r}"
                )
            return f"<!--n:{key}-->{vals[key]}<!--/n-->"

        new = MARK.sub(fix, text)
        if args.write and new != text:
            path.write_text(new, encoding="utf-8")
    unknown = [x for x in problems if "unknown number" in x]
    if args.write:
        print(f"{marks} numbers; {len(problems) - len(unknown)} rewritten; {len(unknown)} unknown")
        return 1 if unknown else 0
    for line in problems:
        print(line)
    print(
        f"{marks} numbers checked; {len(problems)} stale or unknown"
        + ("" if not problems else ": run with --write")
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
