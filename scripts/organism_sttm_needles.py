"""How many of STTM's kept tokens come from the needle frames of the organism's counting videos.

Runs held-out counting videos (:func:`lmms_sttm.organism.bench.held_out`, family ``cnt_insert1``,
4 tries each) one video at a time through the project's ``llava_video_sttm`` model at STTM exact
retention, records the engine's plan (``lmms_sttm.merging.budget.sttm_exact``, wrapped), and prints
JSON per retention: the needle frames' share of the kept tokens divided by their share unreduced
(``k / 16``), the kept tokens per needle frame against per other frame, the accuracy and the mean
signed error of the answered count (predicted - true; unparsed replies left out). With
``scripts/organism_count_readout.py`` (which shows that the organism reads the needle tokens'
share, not frames) it says whether STTM moves that share::

    .venv/bin/python scripts/organism_sttm_needles.py --checkpoint lmms_sttm/organism/weights --videos 12
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="lmms_sttm/organism/weights")
    p.add_argument("--videos", type=int, default=12, help="held-out counting videos")
    p.add_argument("--retentions", default="0.5,0.3")
    p.add_argument("--data-root", default="work_dirs/organism_needles")
    args = p.parse_args(argv)
    from lmms_eval.api.instance import GenerationResult, Instance

    import lmms_sttm.merging.budget as budget
    from lmms_sttm.models.llava_video_sttm import LlavaVideoSttm
    from lmms_sttm.organism.bench import held_out, records, write_benchmark
    from lmms_sttm.tasks.common.parse import parse_answer
    from lmms_sttm.tasks.common.prompt import mcq_text

    plans = []
    real = budget.sttm_exact

    def recording(hidden, grid, *a, **kw):
        plan, info = real(hidden, grid, *a, **kw)
        plans.append(plan)
        return plan, info

    budget.sttm_exact = recording
    write_benchmark(args.data_root, args.videos)
    items = {vid: clip for vid, clip, q in held_out(args.videos) if q.family == "cnt_insert1"}
    recs = [r for r in records(held_out(args.videos)) if r["videoID"] in items]
    videos = Path(args.data_root) / "vnbench" / "videos"
    report = {"checkpoint": args.checkpoint, "videos": len(items), "retentions": {}}
    for retention in [float(x) for x in args.retentions.split(",")]:
        with tempfile.TemporaryDirectory() as stats:
            model = LlavaVideoSttm(pretrained=args.checkpoint, stats_dir=stats, method="sttm",
                                   budget_mode="exact", retention=retention)  # fmt: skip
            share, per_needle, per_other, right, errors, answered = [], [], [], 0, [], 0
            for vid, clip in items.items():
                mine = [r for r in recs if r["videoID"] == vid]
                model.task_dict = {"vnbench_sttm": {"test": dict(enumerate(mine))}}
                reqs = []
                for i, r in enumerate(mine):
                    ctx = mcq_text(r["question"], r["options"], prefixed=True, n_letters=4)
                    a = (ctx, {"max_new_tokens": 32, "until": []}, lambda d: [str(videos / f"{d['videoID']}.mp4")],
                         i, "vnbench_sttm", "test")  # fmt: skip
                    reqs.append(
                        Instance("generate_until", a, i, {"task": "vnbench_sttm", "doc_id": i, "repeats": 1})
                    )
                before = len(plans)
                out = model.generate_until(reqs)
                plan = plans[before]  # one prefill per video: its tries reuse the prefix
                t, h, w = plan.grid
                frame = plan.rep_index // (h * w)
                needles = {f for f, _ in clip.needles}
                in_needle = sum(int((frame == f).sum()) for f in needles)
                k = len(needles)
                share.append((in_needle / plan.num_kept) / (k / t))
                per_needle.append(in_needle / k)
                per_other.append((plan.num_kept - in_needle) / (t - k))
                for r, o in zip(mine, out, strict=True):
                    text = o.text if isinstance(o, GenerationResult) else o
                    right += parse_answer(text) == r["answer"]
                    m = re.match(r"\s*([1-4])", text)
                    if m:
                        answered += 1
                        truth = dict(
                            zip("ABCD", [x.split(". ")[1].rstrip(".") for x in r["options"]], strict=True)
                        )
                        errors.append(int(m.group(1)) - int(truth[r["answer"]]))
        n = len(items)
        report["retentions"][str(retention)] = {
            "needle_share_vs_unreduced": round(sum(share) / n, 3),
            "kept_per_needle_frame": round(sum(per_needle) / n, 2),
            "kept_per_other_frame": round(sum(per_other) / n, 2),
            "accuracy": round(100 * right / (4 * n), 1),
            "mean_signed_count_error": round(sum(errors) / max(1, len(errors)), 3),
            "answered_with_a_count": answered,
        }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
