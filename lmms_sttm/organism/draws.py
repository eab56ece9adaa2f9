"""Several training draws of the organism: their held-out accuracies side by side, and their spread.

A draw is one organism trained by the committed command with its own seed. Each draw's held-out
evaluation is a demo run folder (``python -m lmms_sttm.demo --checkpoint DRAW --per-family N
--out DIR/seed_S``: ``DIR/seed_S/runs/<tag>/**/*_results.json``). :func:`collect` reads them,
:func:`summarise` gives, per run tag and family (and ``"all"``: the per-try accuracy over the three
families), each draw's accuracy, their mean and min-max; :func:`write_spread` writes that as
``draws.csv`` and ``draws.md``; :func:`read_spread` reads ``draws.csv`` back (the demo does, to
show the spread next to each of its rows).
"""

from __future__ import annotations

import csv
import glob
import json
import re
from pathlib import Path

from lmms_sttm.organism.clips import FAMILIES

TASK = "vnbench_sttm"
ALL = "all"
SEED_DIR = re.compile(r"seed_(\d+)$")


def run_accuracy(results_json: Path) -> dict[str, float]:
    """``{"all": per-try accuracy, <family>: per-try accuracy, ...}`` (%) of one lmms-eval results file."""
    res = json.loads(Path(results_json).read_text())["results"][TASK]
    old = (res.get("breakdown,none") or {}).get("task_type", {})  # results before the groups were metrics
    out = {ALL: float(res["sttm_acc,none"])}
    for fam in FAMILIES:
        value = res.get(f"acc_task_type={fam},none", old.get(fam))
        if value is not None:
            out[fam] = float(value)
    return out


def results_file(run_dir: Path) -> Path | None:
    """The newest lmms-eval results file under one run's folder, or None when it has none."""
    found = sorted(glob.glob(str(Path(run_dir) / "**" / "*_results.json"), recursive=True))
    return Path(found[-1]) if found else None


def collect(draws_dir: str | Path) -> dict[int, dict[str, dict[str, float]]]:
    """``{seed: {tag: run_accuracy}}`` for every ``seed_S/runs/<tag>`` under ``draws_dir``."""
    out: dict[int, dict[str, dict[str, float]]] = {}
    if not Path(draws_dir).is_dir():
        return out
    for seed_dir in sorted(Path(draws_dir).iterdir()):
        m = SEED_DIR.match(seed_dir.name)
        if not m or not (seed_dir / "runs").is_dir():
            continue
        runs = {}
        for tag_dir in sorted((seed_dir / "runs").iterdir()):
            found = results_file(tag_dir) if tag_dir.is_dir() else None
            if found is not None:
                runs[tag_dir.name] = run_accuracy(found)
        out[int(m.group(1))] = runs
    return out


def summarise(per_draw: dict[int, dict[str, dict[str, float]]]) -> list[dict]:
    """One row per (tag, family) that every draw has: ``{"tag", "family", "draws": {seed: acc},
    "mean", "min", "max"}`` (tags in the order the first draw lists them, ``"all"`` first)."""
    seeds = sorted(per_draw)
    if not seeds:
        return []
    rows = []
    for tag in per_draw[seeds[0]]:
        if not all(tag in per_draw[s] for s in seeds):
            continue
        for fam in (ALL, *FAMILIES):
            if not all(fam in per_draw[s][tag] for s in seeds):
                continue
            accs = {s: per_draw[s][tag][fam] for s in seeds}
            values = list(accs.values())
            rows.append({"tag": tag, "family": fam, "draws": accs, "mean": sum(values) / len(values),
                         "min": min(values), "max": max(values)})  # fmt: skip
    return rows


def write_spread(rows: list[dict], out: str | Path, command: str = "") -> tuple[Path, Path]:
    """``draws.csv`` (``tag, family, acc_seed_S..., mean, min, max``) and ``draws.md`` in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = sorted(rows[0]["draws"]) if rows else []
    head = ["tag", "family", *[f"acc_seed_{s}" for s in seeds], "mean", "min", "max"]
    with (out / "draws.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(head)
        for r in rows:
            w.writerow([r["tag"], r["family"], *[f"{r['draws'][s]:.2f}" for s in seeds],
                        f"{r['mean']:.2f}", f"{r['min']:.2f}", f"{r['max']:.2f}"])  # fmt: skip
    md = ["# Held-out accuracy across training draws (%)", ""]
    md.append(
        f"Per run tag: each draw's per-try accuracy on the held-out benchmark, their mean and min-max, over the "
        f"three families together (`all`) and per family; {len(seeds)} draws (seeds {', '.join(map(str, seeds))})."
    )
    if command:
        md.append(f"Made by `{command}`.")
    md += ["", "| run | family | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | min–max |"]
    md.append("|" + "---|" * (len(seeds) + 4))
    for r in rows:
        cells = [r["tag"], r["family"], *[f"{r['draws'][s]:.1f}" for s in seeds], f"{r['mean']:.1f}",
                 f"{r['min']:.1f}–{r['max']:.1f}"]  # fmt: skip
        md.append("| " + " | ".join(cells) + " |")
    (out / "draws.md").write_text("\n".join(md) + "\n")
    return out / "draws.csv", out / "draws.md"


def write_summary(draws_dir: str | Path, out: str | Path) -> str | None:
    """The spread of the draws evaluated under ``draws_dir`` (:func:`collect`, :func:`summarise`) into
    ``out/draws.csv`` and ``out/draws.md``, with the command that remakes them; returns a line naming
    the files and the draw closest to the means (:func:`typical_draw`), None when no draw has runs."""
    rows = summarise(collect(draws_dir))
    if not rows:
        return None
    csv_path, _ = write_spread(rows, out, f"python -m lmms_sttm.organism spread {draws_dir} --out {out}")
    return f"{len(rows)} rows -> {csv_path}; closest to the mean: seed {typical_draw(rows)}"


def read_spread(path: str | Path) -> dict[tuple[str, str], dict]:
    """``{(tag, family): {"draws": {seed: acc}, "mean", "min", "max"}}`` from a ``draws.csv``."""
    out = {}
    with Path(path).open(newline="") as f:
        for r in csv.DictReader(f):
            draws = {
                int(k.removeprefix("acc_seed_")): float(v) for k, v in r.items() if k.startswith("acc_seed_")
            }
            out[(r["tag"], r["family"])] = {"draws": draws, "mean": float(r["mean"]), "min": float(r["min"]),
                                            "max": float(r["max"])}  # fmt: skip
    return out


def typical_draw(rows: list[dict]) -> int | None:
    """The seed whose held-out accuracies lie closest to the draws' means: least sum of squared
    differences over every ``"all"`` row of :func:`summarise` (ties: the lowest seed). The demo keeps
    that draw, so that its one organism shows what the draws show on average."""
    whole = [r for r in rows if r["family"] == ALL]
    if not whole:
        return None
    seeds = sorted(whole[0]["draws"])
    return min(seeds, key=lambda s: (sum((r["draws"][s] - r["mean"]) ** 2 for r in whole), s))


def order_agreement(
    per_draw: dict[int, dict[str, dict[str, float]]], tags: list[str], family: str = ALL, margin: float = 0.0
) -> dict:
    """How often the draws agree on the order of two runs: over every pair of ``tags`` (on ``family``),
    ``same``: one run above the other by more than ``margin`` points on every draw; ``flipped``: above
    by more than ``margin`` on one draw and below by more than ``margin`` on another; the rest are
    ``undecided``. Also each tag's spread (max - min over the draws) and its mean over the tags.
    ``per_draw``: :func:`collect`."""
    seeds = sorted(per_draw)
    acc = {t: [per_draw[s][t][family] for s in seeds] for t in tags}
    same = flipped = 0
    for i, x in enumerate(tags):
        for y in tags[i + 1 :]:
            diffs = [a - b for a, b in zip(acc[x], acc[y], strict=True)]
            if all(d > margin for d in diffs) or all(d < -margin for d in diffs):
                same += 1
            elif any(d > margin for d in diffs) and any(d < -margin for d in diffs):
                flipped += 1
    pairs = len(tags) * (len(tags) - 1) // 2
    spread = {t: round(max(v) - min(v), 1) for t, v in acc.items()}
    return {"seeds": seeds, "family": family, "margin": margin, "pairs": pairs, "same": same,
            "flipped": flipped, "undecided": pairs - same - flipped, "spread": spread,
            "mean_spread": round(sum(spread.values()) / len(spread), 2)}  # fmt: skip
