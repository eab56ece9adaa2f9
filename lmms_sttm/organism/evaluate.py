"""Answer held-out questions with the organism through the project's own model class, in process.

Used by the fast accuracy test and for quick checks: the same ``llava_video_sttm`` model (checkpoint
conversion, video pipeline, engine, prefix reuse, reduction) that ``lmms_eval`` runs, fed with
:mod:`lmms_sttm.organism.bench` items without lmms-eval's task machinery.
"""

from __future__ import annotations

from pathlib import Path

from lmms_sttm.organism.bench import held_out, records, write_benchmark
from lmms_sttm.tasks.common.parse import parse_answer
from lmms_sttm.tasks.common.prompt import mcq_text

TASK = "vnbench_sttm"


def answer_all(
    checkpoint: str | Path, data_root: str | Path, per_family: int, stats_dir: str | Path, **model_args
):
    """``[(record, parsed letter)]`` for the first ``per_family`` held-out videos of each family."""
    from lmms_eval.api.instance import GenerationResult, Instance

    from lmms_sttm.models.llava_video_sttm import LlavaVideoSttm

    write_benchmark(data_root, per_family)
    recs = records(held_out(per_family))
    videos = Path(data_root) / "vnbench" / "videos"
    model = LlavaVideoSttm(pretrained=str(checkpoint), stats_dir=str(stats_dir), **model_args)
    model.task_dict = {TASK: {"test": {i: r for i, r in enumerate(recs)}}}
    reqs = []
    for i, r in enumerate(recs):
        ctx = mcq_text(r["question"], r["options"], prefixed=True, n_letters=4)
        args = (
            ctx,
            {"max_new_tokens": 32, "until": []},
            lambda d: [str(videos / f"{d['videoID']}.mp4")],
            i,
            TASK,
            "test",
        )
        reqs.append(Instance("generate_until", args, i, {"task": TASK, "doc_id": i, "repeats": 1}))
    out = model.generate_until(reqs)
    texts = [o.text if isinstance(o, GenerationResult) else o for o in out]
    return [(r, parse_answer(t)) for r, t in zip(recs, texts, strict=True)], model.stats.records


def accuracy_by_family(answers: list[tuple[dict, str]]) -> dict[str, float]:
    """Per-try accuracy (%) per task type, and their mean under ``"mean"``."""
    fam: dict[str, list[bool]] = {}
    for r, pred in answers:
        fam.setdefault(r["task_type"], []).append(pred == r["answer"])
    acc = {k: 100.0 * sum(v) / len(v) for k, v in sorted(fam.items())}
    acc["mean"] = sum(acc.values()) / len(acc)
    return acc
