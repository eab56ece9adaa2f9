"""Benchmark every registered reduction method's stages alone; prints one JSON line per case.

Input: a synthetic video of hidden states ``[T*H*W, C]`` (default T=128, 14x14, C=3584, float32 on
CPU / bfloat16 on CUDA; ``--grid 13x13`` for LLaVA-Video's pooled grid, ``--grid 12x21 --family qwen``
for a Qwen-sized grid bound as Qwen2-VL-7B), the generator of ``scripts/bench_merge.py``. The methods
come from the registry (every built-in: STTM, the 2024 baselines and EVS, VidCom2, FastVID, HoliTom,
FlashVID; entry points; ``--only name,...`` or ``--only package.module:SPEC``), bound as for
LLaVA-Video-7B on Video-MME; staged methods run every stage (``methods/standalone.py``: HoliTom's and
FlashVID's outer stage, then their inner stage on what it left); stages that read the last prompt
token's attention get seeded random scores (the score computation, one ``k_proj`` over the chunk, is
part of the prefill, not of the method). Each case runs ``--warmup`` untimed calls first. Each line:
method, setting, grid, median / min ms per video over the repeats, kept ratio (after the last stage);
exact-budget STTM lines add the number of STTM calls of the search, trimmed tokens and the overhead
over threshold STTM at the same retention. A last line ``{"summary": ...}`` puts each method's median
next to STTM's at the same setting (``budget=50``, ``budget=30``, ``exact retention=R``) with the
ratio method / STTM.

Usage: ``.venv/bin/python scripts/bench_methods.py [--frames 128] [--channels 3584] [--repeats 3]``;
the 2025-26 methods next to STTM: ``--only sttm,evs,vidcom2,fastvid,holitom,flashvid``.

``--ab REV``: the exact-budget STTM search and the baseline reducers of the working tree against
those of git revision ``REV``
(its ``lmms_sttm/merging`` imported as a second package, as in ``scripts/bench_merge_ab.py``),
calls interleaved in random order in one process; one JSON line per case with both medians and
the ratio working tree / revision (wall and CPU time). Each case pairs the tree's default (the authors' computation)
with the revision's reducer for the same budget; ``tome`` also runs the tree's ``order="raster"``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import tempfile
import time
from pathlib import Path

import torch

from lmms_sttm.merging.budget import SttmExactReducer
from lmms_sttm.merging.dycoke import DycokeStage1Reducer
from lmms_sttm.merging.fastv import FastVReducer
from lmms_sttm.merging.pool import PoolReducer
from lmms_sttm.merging.sttm import SttmReducer
from lmms_sttm.merging.tome import TomeReducer
from lmms_sttm.methods.standalone import run_without_model


def synthetic(frames: int, channels: int, seed: int = 0, h: int = 14, w: int = 14) -> torch.Tensor:
    """``[T*H*W, C]`` video-like hidden states: ``bench_merge.synthetic_video`` (same inputs as the
    STTM benchmark; retention 20-80% at the paper's thresholds), else a local fallback."""
    try:
        from bench_merge import synthetic_video  # scripts/ is on sys.path when run as a script

        return synthetic_video(frames, h, w, channels, seed).reshape(-1, channels)
    except ImportError:
        pass
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    freqs = torch.rand(6, 2, generator=gen) * 3
    basis = torch.stack([torch.cos(2 * math.pi * (f[0] * yy + f[1] * xx)) for f in freqs], -1)
    scene = basis @ torch.randn(6, channels, generator=gen)  # [H, W, C]
    drift = torch.cumsum(0.1 * torch.randn(frames, 1, 1, channels, generator=gen), 0)
    detail = (
        (torch.rand(frames // 4 + 1, h, w, 1, generator=gen) < 0.15).float().repeat_interleave(4, 0)[:frames]
    )
    video = scene + drift + 1.5 * detail * torch.randn(h, w, channels, generator=gen)
    video = video + 0.6 * torch.randn(frames, h, w, channels, generator=gen)
    return video.reshape(-1, channels)


class _Ctx:
    def __init__(self, n: int, device) -> None:
        self.scores = torch.rand(n, generator=torch.Generator().manual_seed(1)).to(device)
        self.layer, self.num_layers = 2, 28


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, repeats: int, device, warmup: int = 0, cpu: list | None = None) -> tuple[list[float], object]:
    """Wall ms of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones (``cpu``: gets the
    process CPU ms of each call, all threads; less sensitive than wall time to a shared machine)."""
    out, times = None, []
    for _ in range(warmup):
        out = fn()
    for _ in range(repeats):
        _sync(device)
        c0, began = time.process_time(), time.perf_counter()
        out = fn()
        _sync(device)
        times.append(1000 * (time.perf_counter() - began))
        if cpu is not None:
            cpu.append(1000 * (time.process_time() - c0))
    return times, out


#: ``--family``: the (family, paper model) a run binds the methods for
FAMILIES = {"llava": ("llava", "llava_video_7b"), "qwen": ("qwen", "qwen2_vl_7b")}


def cases(names=None, family: str = "llava", which: str = "all", retentions=(0.5, 0.3, 0.15)):
    """``(method, setting, reducer)`` of every registered method (``names``: a subset): the authors'
    50 / 30 settings where published, and exact budgets of 50 / 30 / 15%, bound as a LLaVA-Video-7B
    (``family="qwen"``: Qwen2-VL-7B) run on Video-MME binds them; ``which``: ``all``, ``native``
    (the 50 / 30 settings only) or ``exact`` (the ``retentions``)."""
    from lmms_sttm.methods import registry
    from lmms_sttm.methods.bind import bind, method_settings
    from lmms_sttm.methods.spec import BuildContext

    for name in names or registry.names():
        spec = registry.get(name)
        if not spec.reduces:
            continue
        settings = method_settings(spec, {})
        budgets = [{"budget": b} for b in sorted(spec.budgets, reverse=True)] if which != "exact" else []
        if (spec.exact is not None or spec.knob is not None) and which != "native":
            budgets += [{"budget_mode": "exact", "retention": r} for r in retentions]
        for budget in budgets:
            ctx = BuildContext(*FAMILIES[family], "videomme_sttm", 2, 28, **budget)
            inst = bind(spec, settings, ctx)
            label = (
                f"budget={budget['budget']}"
                if "budget" in budget
                else f"exact retention={budget['retention']}"
            )
            shown = {k: v for k, v in inst.params.items() if k in spec.knobs}
            yield name, " ".join([label, *(f"{k}={v}" for k, v in shown.items())]), inst.prefill


def ab_cases(rev_module):
    """``(method, setting, tree reducer, revision reducer)``: exact-budget STTM at 50 / 30 / 15%, the
    baselines at the authors' 50 / 30 settings."""
    tome, dycoke, fastv, pool = (rev_module(m) for m in ("tome", "dycoke", "fastv", "pool"))
    budget = rev_module("budget")
    for r in (0.5, 0.3, 0.15):
        yield "sttm", f"exact retention={r}", SttmExactReducer(r), budget.SttmExactReducer(r)
    for budget, keep, prune, evict in ((50, 0.5, 0.70, 0.5), (30, 0.3, 0.925, 0.7)):
        tome_prune = round(1 - keep, 2)
        yield "tome", f"budget={budget}", TomeReducer(prune=tome_prune), tome.TomeReducer(keep)
        yield (
            "tome",
            f"budget={budget} raster",
            TomeReducer(prune=tome_prune, order="raster"),
            tome.TomeReducer(keep),
        )
        yield (
            "dycoke_stage1",
            f"budget={budget}",
            DycokeStage1Reducer(prune=prune),
            dycoke.DycokeStage1Reducer(prune=prune),
        )
        yield "fastv", f"budget={budget}", FastVReducer(evict=evict), fastv.FastVReducer(keep)
        yield "pool", f"budget={budget}", PoolReducer(keep), pool.PoolReducer(keep)


def run_ab(args, x, grid, ctx, device) -> None:
    from bench_merge_ab import revision_merging  # scripts/ is on sys.path when run as a script

    with tempfile.TemporaryDirectory() as tmp:
        for method, setting, tree, rev in ab_cases(revision_merging(args.ab, Path(tmp))):
            extra = {"context": ctx} if getattr(tree, "needs_attention", False) else {}
            sides = {
                "tree": lambda r=tree, e=extra: r(x, grid, **e),
                "rev": lambda r=rev, e=extra: r(x, grid, **e),
            }
            kept = {name: fn().num_kept for name, fn in sides.items()}  # also the warm-up call
            wall: dict[str, list[float]] = {name: [] for name in sides}
            cpu: dict[str, list[float]] = {name: [] for name in sides}
            for _ in range(args.repeats):
                for name in random.sample(list(sides), len(sides)):
                    _sync(device)
                    c0, began = time.process_time(), time.perf_counter()
                    sides[name]()
                    _sync(device)
                    wall[name].append(1000 * (time.perf_counter() - began))
                    cpu[name].append(1000 * (time.process_time() - c0))
            med = {name: statistics.median(v) for name, v in wall.items()}
            med_cpu = {name: statistics.median(v) for name, v in cpu.items()}
            line = {
                "rev": args.ab, "method": method, "setting": setting, "grid": list(grid),
                "channels": args.channels, "device": device.type, "threads": torch.get_num_threads(),
                "tree_ms": round(med["tree"], 1), "rev_ms": round(med["rev"], 1),
                "ratio_tree_over_rev": round(med["tree"] / med["rev"], 3),
                "tree_cpu_ms": round(med_cpu["tree"], 1), "rev_cpu_ms": round(med_cpu["rev"], 1),
                "cpu_ratio_tree_over_rev": round(med_cpu["tree"] / med_cpu["rev"], 3),
                "tree_kept": kept["tree"], "rev_kept": kept["rev"], "repeats": args.repeats,
            }  # fmt: skip
            print(json.dumps(line), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=128)
    ap.add_argument("--channels", type=int, default=3584)
    ap.add_argument("--grid", default="14x14", help="tokens per frame, HxW (Qwen-sized: e.g. 12x21)")
    ap.add_argument("--family", default="llava", choices=sorted(FAMILIES), help="bind the methods as for")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1, help="untimed calls before each case's repeats")
    ap.add_argument("--retentions", default="0.5,0.3,0.15", help="exact-budget retentions to run")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    ap.add_argument("--only", default="", help="comma-separated method names to run")
    ap.add_argument("--settings", default="all", choices=("all", "native", "exact"), help="which budgets")
    ap.add_argument("--ab", default="", help="git revision to compare the baseline reducers with")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    h, w = (int(v) for v in args.grid.lower().split("x"))
    grid = (args.frames, h, w)
    x = synthetic(args.frames, args.channels, h=h, w=w).to(device, dtype)
    ctx = _Ctx(x.shape[0], device)
    if args.ab:
        run_ab(args, x, grid, ctx, device)
        return
    only = [m for m in args.only.split(",") if m]
    threshold_ms: dict[float, float] = {}
    medians: dict[str, dict[str, float]] = {}
    retentions = tuple(float(r) for r in args.retentions.split(",") if r)
    for method, setting, reducer in cases(only, args.family, args.settings, retentions):
        run = lambda r=reducer: run_without_model(r, x, grid)  # noqa: E731
        cpu: list[float] = []
        times, plan = _time(run, args.repeats, device, args.warmup, cpu)
        line = {
            "method": method,
            "setting": setting,
            "grid": list(grid),
            "family": args.family,
            "channels": args.channels,
            "device": device.type,
            "dtype": str(dtype).removeprefix("torch."),
            "threads": torch.get_num_threads(),
            "median_ms": round(statistics.median(times), 1),
            "min_ms": round(min(times), 1),
            "median_cpu_ms": round(statistics.median(cpu), 1),
            "kept_ratio": round(plan.ratio, 4),
        }
        if isinstance(reducer, SttmExactReducer):
            info = reducer.last
            line.update(search_calls=info.calls, trimmed=info.trimmed, tau_s=round(info.tau_s, 4))
            line["tau_t"] = round(info.tau_t, 4)
            # threshold STTM at the thresholds the search found: the cost of one call
            ref_times, _ = _time(lambda i=info: SttmReducer(i.tau_s, i.tau_t)(x, grid), args.repeats, device)
            threshold_ms[reducer.retention] = statistics.median(ref_times)
            line["threshold_sttm_ms"] = round(threshold_ms[reducer.retention], 1)
            line["overhead_x"] = round(line["median_ms"] / threshold_ms[reducer.retention], 2)
        print(json.dumps(line), flush=True)
        medians.setdefault(_setting_key(setting), {})[method] = (line["median_ms"], line["median_cpu_ms"])
    print(json.dumps({"summary": vs_sttm(medians), "grid": list(grid), "family": args.family}), flush=True)


def _setting_key(setting: str) -> str:
    """``budget=30 tau_s=0.8 ...`` -> ``budget=30``; ``exact retention=0.3 ...`` -> ``exact retention=0.3``."""
    words = setting.split()
    return " ".join(words[:2]) if words[0] == "exact" else words[0]


def vs_sttm(medians: dict[str, dict[str, tuple[float, float]]]) -> dict[str, dict[str, dict]]:
    """Per setting, each method's median wall / CPU ms (``medians[setting][method]``) and their
    ratios to STTM's at that setting (None where STTM did not run)."""
    out = {}
    for setting, by_method in medians.items():
        ref = by_method.get("sttm")
        out[setting] = {
            m: {
                "median_ms": wall,
                "median_cpu_ms": cpu,
                "x_sttm": round(wall / ref[0], 2) if ref else None,
                "cpu_x_sttm": round(cpu / ref[1], 2) if ref and ref[1] else None,
            }
            for m, (wall, cpu) in by_method.items()
        }
    return out


if __name__ == "__main__":
    main()
