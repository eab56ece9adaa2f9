"""Conformance check of a reduction method: ``python -m lmms_sttm.check_method NAME [--json]``.

``NAME``: a built-in, an entry point of group ``lmms_sttm.methods``, or ``package.module:SPEC``.
On the tiny random model of every supported family (LLaVA-OneVision/LLaVA-Video, Qwen2-VL,
Qwen2.5-VL, Qwen3-VL dense and MoE, InternVL3.5, the hybrid Qwen3.5 dense and MoE), rule by rule:

- ``spec``: the spec is well formed and its stages split at distinct layers (before any forward);
- ``plans_valid``: every stage returns a valid plan (token map, representatives, sizes);
- ``deterministic``: two runs on the same input give the same plans and logits;
- ``exact_budget``: ``budget_mode=exact`` keeps 30% and 50% within one point;
- ``query_agnostic``: when no declared stage reads the question, another question gives the same
  plan and a reused prefix equals a fresh prefill (logits within 1e-5);
- ``by_hand_positions``: first-token logits equal the unpatched model run by hand with the
  family's expected positions (1e-5);
- ``processes``: the same runs split over 2 processes give bit-identical plans and logits;

a method whose stage reads ``vision_attention`` runs every rule with the scores of the tiny
model's own vision tower (the kind its spec declares; ``vision_scores`` in the report, per family),

then times the method's stages on a LLaVA-Video-sized input (128 frames x 14 x 14 tokens, 3584
channels; ``--timing-channels`` to change, 0 to skip). Exits 1 naming the first broken rule.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

FAMILIES = (
    "llava_onevision",
    "qwen2_vl",
    "qwen2_5_vl",
    "qwen3_vl",
    "qwen3_vl_moe",
    "internvl",
    "qwen3_5",
    "qwen3_5_moe",
)


def _spec_problem(name: str):
    from lmms_sttm.methods import registry

    try:
        spec = registry.get(name)
    except ValueError as e:
        return None, str(e)
    return spec, None


def _processes_rule(name: str, in_process: dict[tuple[str, int], dict]) -> str | None:
    """The fingerprints of 2 spawned processes (one video each per family) equal the in-process ones."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p), OMP_NUM_THREADS="1")
    for family in dict.fromkeys(f for f, _ in in_process):  # the checked families, in order
        procs = {
            seed: subprocess.Popen(
                [sys.executable, "-m", "lmms_sttm.conformance.worker", name, family, str(seed)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for seed in (0, 1)
        }
        for seed, proc in procs.items():
            out, err = proc.communicate(timeout=600)
            if proc.returncode != 0:
                return f"{family}: worker process failed: {err.strip().splitlines()[-1] if err.strip() else proc.returncode}"
            if json.loads(out.strip().splitlines()[-1]) != in_process[(family, seed)]:
                return f"{family}: video {seed} gave other plans or logits in a separate process"
    return None


def time_method(spec, settings, channels: int, frames: int = 128, side: int = 14, repeats: int = 3) -> float:
    """Median ms of the method's stages on ``[frames*side*side, channels]`` random features (random
    scores for stages that read attention; no model)."""
    import torch

    from lmms_sttm.conformance.rules import native_budget
    from lmms_sttm.methods.bind import bind
    from lmms_sttm.methods.spec import BuildContext
    from lmms_sttm.methods.standalone import run_without_model

    gen = torch.Generator().manual_seed(0)
    grid = (frames, side, side)
    base = torch.randn(frames, 1, 1, channels, generator=gen)
    hidden = (base + 0.3 * torch.randn(frames, side, side, channels, generator=gen)).reshape(-1, channels)
    ctx = BuildContext("llava", "llava_video_7b", "videomme_sttm", 2, 28, **native_budget(spec))
    times = []
    for _ in range(repeats):
        method = bind(spec, settings, ctx).prefill
        began = time.perf_counter()
        run_without_model(method, hidden, grid)
        times.append(1000 * (time.perf_counter() - began))
    return statistics.median(times)


def check(name: str, families=FAMILIES, processes: bool = True, timing_channels: int = 3584) -> dict:
    """Runs every rule; returns ``{"method", "ok", "first_failure", "rules": {rule: {family: msg}}, ...}``."""
    import torch

    from lmms_sttm.conformance import rules
    from lmms_sttm.methods.bind import method_settings

    torch.set_num_threads(1)
    report: dict = {"method": name, "rules": {}, "ok": True, "first_failure": None}

    def fail(rule: str, where: str, message: str) -> None:
        report["rules"].setdefault(rule, {})[where] = message
        if report["ok"]:
            report["ok"], report["first_failure"] = False, f"{rule} ({where}): {message}"

    spec, problem = _spec_problem(name)
    if spec is None:
        fail("spec", "load", problem)
        return report
    report.update(name=spec.name, query_agnostic=spec.query_agnostic, reference=spec.reference)
    settings = method_settings(spec, {})
    fingerprints: dict = {}
    for family in families:
        try:
            case = rules.make_case(family, spec)
            spec.check_splits(case.layer)
        except ValueError as e:
            fail("spec", family, str(e))
            continue
        if case.vision_kind is not None:
            try:
                got = case.vision_scores() is not None
            except Exception as e:  # the tower's hook fails: the method's read is broken on this family
                fail("spec", family, f"vision scores: {type(e).__name__}: {e}")
                continue
            report.setdefault("vision_scores", {})[family] = case.vision_kind if got else "none (no hook)"
        for rule, fn in rules.RULES.items():
            try:
                message = fn(spec, settings, case)
            except Exception as e:  # a broken method raises: that is its failure of this rule
                message = f"{type(e).__name__}: {e}"
            report["rules"].setdefault(rule, {})[family] = message or "ok"
            if message:
                fail(rule, family, message)
        if processes:
            from lmms_sttm.conformance.worker import fingerprint_of

            for seed in (0, 1):
                try:
                    fingerprints[(family, seed)] = fingerprint_of(name, family, seed)
                except Exception as e:
                    fail("processes", family, f"{type(e).__name__}: {e}")
        case.engine.remove()
    if processes and report["ok"]:
        message = _processes_rule(name, fingerprints)
        report["rules"]["processes"] = {"2 processes": message or "ok"}
        if message:
            fail("processes", "2 processes", message)
    if timing_channels and report["ok"] and spec.reduces:
        report["ms_per_video"] = round(time_method(spec, settings, timing_channels), 1)
        report["timing_input"] = f"128 x 14 x 14 tokens x {timing_channels} channels, fp32, 1 thread"
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lmms_sttm.check_method", description=__doc__.splitlines()[0])
    p.add_argument("method", help="built-in name, entry-point name, or package.module:SPEC")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--families", default=",".join(FAMILIES), help=f"comma-separated subset of {FAMILIES}")
    p.add_argument("--no-processes", action="store_true", help="skip the 2-process rule")
    p.add_argument("--timing-channels", type=int, default=3584, help="channels of the timing input (0: skip)")
    args = p.parse_args(argv)
    families = tuple(f for f in args.families.split(",") if f)
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        p.error(f"unknown families {unknown}; use {list(FAMILIES)}")
    report = check(args.method, families, not args.no_processes, args.timing_channels)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        for rule, where in report["rules"].items():
            print(f"{rule:18s} " + "  ".join(f"{k}: {v}" for k, v in where.items()))
        if "vision_scores" in report:
            print(
                f"{'vision scores':18s} " + "  ".join(f"{k}: {v}" for k, v in report["vision_scores"].items())
            )
        if "ms_per_video" in report:
            print(f"{'ms per video':18s} {report['ms_per_video']} ({report['timing_input']})")
        print("PASS" if report["ok"] else f"FAIL: {report['first_failure']}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
