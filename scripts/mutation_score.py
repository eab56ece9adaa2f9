"""Mutation score of the core modules with mutmut 3 (driver of ``scripts/mutation_score.sh``).

Each module runs in its own scratch folder ``.mutation/scratch/<name>`` (a copy of ``lmms_sttm/``,
``tests/`` and ``pyproject.toml`` plus a ``setup.cfg`` naming the module and its targeted tests), so
mutmut's configuration and its ``mutants/`` folder never touch the checkout or the normal test run.
mutmut copies the package into ``mutants/``, puts a trampoline in every function of the module
and runs, per mutant, the targeted tests that called that function (forked from one process that
imported the tests once). Modules with more mutants than the sample size run a seeded sample.
A module that runs past its time bound is interrupted: the mutants left are ``not_run``.

Prints one JSON object: per module ``mutants`` (all), ``sampled``, ``killed``, ``survived``,
``timed_out``, ``no_tests`` (no targeted test reaches the mutated function: counted as survivors),
``not_run``, ``equivalent`` (survivors listed in ``scripts/mutation_equivalent.json`` with the
reason they behave the same), ``cuda_only`` (listed there with a reason starting ``cuda:``: only a
device argument changes, which no CPU test can see), ``score_pct`` = (killed + timed_out) /
(run - equivalent), ``score_cpu_pct`` the same without the cuda_only ones, and the names of
unexplained survivors. ``.mutation/<name>.log`` holds mutmut's output.

Usage: python scripts/mutation_score.py [--sample N] [--seconds S] [--jobs J] [--seed K] [module ...]
(``--collect``: print the JSON of the folders the last runs left, without running)
(modules as named in MODULES, default all; mutmut must be importable: the shell script sets it up).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".mutation" / "scratch"
EQUIVALENT = ROOT / "scripts" / "mutation_equivalent.json"

M, E = "tests/merging/", "tests/engine/"
#: module -> (source file, targeted tests)
MODULES: dict[str, tuple[str, list[str]]] = {
    "merging/groups": (
        "lmms_sttm/merging/groups.py",
        [
            f"{M}test_groups_units.py",
            f"{M}test_size_weighting.py",
            f"{M}test_baselines.py",
            f"{M}test_baselines_authors.py",
            f"{M}test_budget.py",
        ],
    ),
    "merging/budget": (
        "lmms_sttm/merging/budget.py",
        [
            f"{M}test_budget_contract.py",
            f"{M}test_budget.py",
            f"{M}test_size_weighting.py",
            f"{M}test_sttm_counts.py",
            "tests/methods/test_spec_registry.py",  # KnobSearch: the exact budget of a method's own knob
            f"{M}test_knob_search.py",
        ],
    ),
    "merging/tome": (
        "lmms_sttm/merging/tome.py",
        [
            f"{M}test_tome_contract.py",
            f"{M}test_baselines.py",
            f"{M}test_baselines_authors.py",
            f"{M}test_size_weighting.py",
        ],
    ),
    "merging/dycoke": (
        "lmms_sttm/merging/dycoke.py",
        [f"{M}test_dycoke_contract.py", f"{M}test_baselines.py", f"{M}test_baselines_authors.py"],
    ),
    "merging/fastv": (
        "lmms_sttm/merging/fastv.py",
        [f"{M}test_fastv_contract.py", f"{M}test_baselines.py", f"{M}test_baselines_authors.py"],
    ),
    "merging/sttm_counts": (
        "lmms_sttm/merging/sttm_counts.py",
        [f"{M}test_sttm_counts_edges.py", f"{M}test_sttm_counts.py"],
    ),
    "merging/framefusion_authors": (
        "lmms_sttm/merging/framefusion_authors.py",
        [f"{M}test_framefusion_units.py", f"{M}test_framefusion_authors.py"],
    ),
    "engine/segmented_cache": (
        "lmms_sttm/engine/segmented_cache.py",
        [f"{E}test_segmented_cache_units.py", f"{E}test_units.py", f"{E}test_prefix.py"],
    ),
    "engine/positions": (
        "lmms_sttm/engine/positions.py",
        [f"{E}test_positions_units.py", f"{E}test_units.py", f"{E}test_stages.py"],
    ),
    "engine/stages": ("lmms_sttm/engine/stages.py", [f"{E}test_stages_units.py", f"{E}test_stages.py"]),
    "engine/kv_pruning": (
        "lmms_sttm/engine/kv_pruning.py",
        [f"{E}test_dycoke_stage2.py", f"{E}test_dycoke_decode_steps.py", f"{E}test_kv_pruner_units.py"],
    ),
    "merging/dycoke_kv": (
        "lmms_sttm/merging/dycoke_kv.py",
        [f"{M}test_dycoke_kv_units.py", f"{E}test_dycoke_stage2.py", f"{E}test_dycoke_decode_steps.py"],
    ),
    "models/failures": ("lmms_sttm/models/failures.py", ["tests/models/test_failure_budget.py"]),
    "models/stats": ("lmms_sttm/models/stats.py", ["tests/models/test_stats_dedup.py"]),
    "report/relative": ("lmms_sttm/report/relative.py", ["tests/report/test_relatives.py"]),
}

#: pytest plugin of the scratch folder: every mutant forks from the process that ran the unmutated
#: tests, so memoised tables (``functools.lru_cache``, e.g. ``sttm_counts.grid_layout``) would hand
#: the mutant the unmutated results; each run starts with them emptied
PLUGIN = '''"""Empties lmms_sttm's memo caches before each test session of a mutation run."""
import sys


def pytest_sessionstart(session):
    for name, module in list(sys.modules.items()):
        if name == "lmms_sttm" or name.startswith("lmms_sttm."):
            for value in list(vars(module).values()):
                clear = getattr(value, "cache_clear", None)
                if callable(clear):
                    clear()
'''

KILLED, SURVIVED, TIMEOUT, NO_TESTS = {1, 3}, {0}, {36, -24, 24, 152, 255}, {5, 33}


def _slug(name: str) -> str:
    return name.replace("/", "__")


def _prepare(name: str) -> Path:
    """A fresh scratch folder for ``name`` with its mutmut configuration."""
    source, tests = MODULES[name]
    work = WORK / _slug(name)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "lmms_sttm", work / "lmms_sttm", ignore=skip)
    shutil.copytree(ROOT / "tests", work / "tests", ignore=skip)
    shutil.copy2(ROOT / "pyproject.toml", work / "pyproject.toml")
    selection = "".join(f"\n    {t}" for t in tests)
    (work / "setup.cfg").write_text(
        "[mutmut]\n"
        "source_paths = lmms_sttm\n"
        f"only_mutate = {source}\n"
        f"pytest_add_cli_args_test_selection ={selection}\n"
        "pytest_add_cli_args =\n    -p\n    no:cacheprovider\n    -p\n    tests._mutation_plugin\n"
        "use_git_change_detection = false\n"
    )
    (work / "tests" / "_mutation_plugin.py").write_text(PLUGIN)
    return work


def _child(name: str, sample: int, seconds: int, jobs: int, seed: int) -> None:
    """In the scratch folder: generate the mutants, pick the sample, run it (bounded by ``seconds``)."""
    # lmms_sttm.pth imported the checkout's package at start-up: the mutants must be imported instead
    for mod in [m for m in sys.modules if m == "lmms_sttm" or m.startswith("lmms_sttm.")]:
        del sys.modules[mod]
    from mutmut import __main__ as mm
    from mutmut.mutation.data import SourceFileMutationData

    source = MODULES[name][0]
    os.makedirs("mutants", exist_ok=True)
    mm.copy_src_dir()
    mm.copy_also_copy_files()
    mm.setup_source_paths()
    mm.store_lines_covered_by_tests()
    mm.create_mutants(jobs)
    data = SourceFileMutationData(path=Path(source))
    data.load()
    names = sorted(data.exit_code_by_key)
    chosen = names if len(names) <= sample else sorted(random.Random(seed).sample(names, sample))
    Path("sample.json").write_text(json.dumps({"mutants": len(names), "sampled": chosen}))

    def stop(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        mm._run(chosen, jobs)
    except (KeyboardInterrupt, SystemExit) as e:
        print(f"[mutation] {name}: stopped ({type(e).__name__})", flush=True)
    finally:
        signal.alarm(0)


def _equivalent() -> dict[str, dict[str, str]]:
    if not EQUIVALENT.exists():
        return {}
    return {k: v for k, v in json.loads(EQUIVALENT.read_text()).items() if not k.startswith("_")}


def _collect(name: str, work: Path, seconds: float) -> dict:
    picked = json.loads((work / "sample.json").read_text())
    meta = work / "mutants" / (MODULES[name][0] + ".meta")
    codes = json.loads(meta.read_text())["exit_code_by_key"] if meta.exists() else {}
    equivalent = _equivalent().get(name, {})
    out = {"mutants": picked["mutants"], "sampled": len(picked["sampled"])}
    counts = {"killed": 0, "survived": 0, "timed_out": 0, "no_tests": 0, "not_run": 0, "other": 0}
    left = []
    for key in picked["sampled"]:
        code = codes.get(key)
        if code in KILLED:
            counts["killed"] += 1
        elif code in TIMEOUT:
            counts["timed_out"] += 1
        elif code in SURVIVED or code in NO_TESTS:
            counts["survived" if code in SURVIVED else "no_tests"] += 1
            left.append(key)
        elif code is None:
            counts["not_run"] += 1
        else:
            counts["other"] += 1
            left.append(key)
    eq = [k for k in left if k in equivalent and not equivalent[k].startswith("cuda:")]
    cuda = [k for k in left if k in equivalent and equivalent[k].startswith("cuda:")]
    run = counts["killed"] + counts["timed_out"] + counts["survived"] + counts["no_tests"] + counts["other"]
    caught = counts["killed"] + counts["timed_out"]
    out.update(counts)
    out["equivalent"], out["cuda_only"] = len(eq), len(cuda)
    out["score_pct"] = round(100.0 * caught / (run - len(eq)), 1) if run > len(eq) else None
    out["score_cpu_pct"] = (
        round(100.0 * caught / (run - len(eq) - len(cuda)), 1) if run > len(eq) + len(cuda) else None
    )
    out["unexplained_survivors"] = [k for k in left if k not in equivalent]
    out["seconds"] = round(seconds, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help=f"default: all of {list(MODULES)}")
    parser.add_argument("--sample", type=int, default=200, help="mutants per module at most (seeded sample)")
    parser.add_argument("--seconds", type=int, default=600, help="time bound of one module's mutation run")
    parser.add_argument("--jobs", type=int, default=2, help="mutants run at once")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--collect", action="store_true", help="only print the JSON of the last runs' folders"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.sample, args.seconds, args.jobs, args.seed)
        return
    unknown = sorted(set(args.modules) - set(MODULES))
    if unknown:
        sys.exit(f"unknown modules {unknown}; known: {list(MODULES)}")
    results = {}
    if args.collect:
        for name in args.modules or list(MODULES):
            try:
                results[name] = _collect(name, WORK / _slug(name), 0.0)
            except FileNotFoundError:
                results[name] = {"error": "not run yet"}
        print(json.dumps(results, indent=2, ensure_ascii=False))
        return
    for name in args.modules or list(MODULES):
        work = _prepare(name)
        log = ROOT / ".mutation" / f"{_slug(name)}.log"
        began = time.monotonic()
        command = [sys.executable, str(Path(__file__).resolve()), "--child", name]
        command += ["--sample", str(args.sample), "--seconds", str(args.seconds)]
        command += ["--jobs", str(args.jobs), "--seed", str(args.seed)]
        with log.open("w") as out:
            try:
                subprocess.run(
                    command, cwd=work, stdout=out, stderr=subprocess.STDOUT, timeout=args.seconds + 600
                )
            except subprocess.TimeoutExpired:
                print(f"[mutation] {name}: killed after {args.seconds + 600} s", file=sys.stderr)
        try:
            results[name] = _collect(name, work, time.monotonic() - began)
        except FileNotFoundError as e:
            results[name] = {"error": f"no results ({e}); see {log.relative_to(ROOT)}"}
        print(
            f"[mutation] {name}: {json.dumps(results[name], ensure_ascii=False)}", file=sys.stderr, flush=True
        )
    print(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
