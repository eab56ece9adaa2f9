"""What our entry point costs every lmms-eval process: wall time of ``import lmms_eval.models``.

Each pair runs two fresh interpreters, one with lmms_sttm's ``lmms_eval.models`` entry point and
one without, in alternating order (shared CPUs drift; pairs cancel most of it). The entry point is
switched by a throwaway ``lmms_sttm`` dist-info put first on ``sys.path`` (with or without
``entry_points.txt``): it shadows an installed one, so both runs see the same distributions.

    python scripts/bench_import.py [--pairs 5] [--example]

``--example``: the "with" runs also have the example method package (``examples/l2keep``, an
entry point of group ``lmms_sttm.methods``) installed on their path.

Prints JSON: seconds per run, medians, the median of per-pair ratios (with / without), and the
heavy modules the import left loaded in each variant.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "datasets", "lmms_eval.tasks")
CHILD = f"""
import json, sys, time
began = time.perf_counter()
import lmms_eval.models
seconds = time.perf_counter() - began
ours = "llava_video_sttm" in lmms_eval.models.MODEL_REGISTRY_V2.list_canonical_model_ids()
print(json.dumps(dict(seconds=seconds, ours=ours, heavy=[m for m in {HEAVY!r} if m in sys.modules])))
"""


def _dist(root: Path, entry_point: bool) -> Path:
    info = root / "lmms_sttm-0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lmms_sttm\nVersion: 0.0\n")
    if entry_point:
        (info / "entry_points.txt").write_text("[lmms_eval.models]\nlmms_sttm = lmms_sttm.models:manifests\n")
    return root


def _run(site: Path, extra: Path | None = None) -> dict:
    # cwd: the child's sys.path starts with it; a checkout's lmms_sttm.egg-info there would win.
    env = dict(os.environ)
    env.pop("LMMS_EVAL_PLUGINS", None)
    paths = (str(site), str(extra or ""), str(REPO), env.get("PYTHONPATH", ""))
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    proc = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, cwd=site, capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument(
        "--example", action="store_true", help="the example method installed in the 'with' runs"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sites = {"with": _dist(Path(tmp, "with"), True), "without": _dist(Path(tmp, "without"), False)}
        example = None
        if args.example:
            sys.path.insert(0, str(REPO))
            from lmms_sttm.example_method import install_example

            example = install_example(Path(tmp, "example"))
        extra = {"with": example, "without": None}
        _run(sites["with"], example)  # warm the file cache (bytecode, shared libraries) for both variants
        runs: dict[str, list[dict]] = {"with": [], "without": []}
        for i in range(args.pairs):
            order = ("with", "without") if i % 2 == 0 else ("without", "with")
            for variant in order:
                runs[variant].append(_run(sites[variant], extra[variant]))
    seconds = {v: [r["seconds"] for r in rs] for v, rs in runs.items()}
    ratios = [w / wo for w, wo in zip(seconds["with"], seconds["without"], strict=True)]
    result = {
        "what": "wall time of `import lmms_eval.models` in a fresh interpreter",
        "pairs": args.pairs,
        "example_method_installed": args.example,
        "seconds": seconds,
        "median_s": {v: statistics.median(s) for v, s in seconds.items()},
        "ratio_median_of_pairs": statistics.median(ratios),
        "registers_our_models": {v: all(r["ours"] for r in rs) for v, rs in runs.items()},
        "heavy_modules_loaded": {v: sorted({m for r in rs for m in r["heavy"]}) for v, rs in runs.items()},
        "python": sys.version.split()[0],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
