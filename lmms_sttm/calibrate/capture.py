"""The hidden states STTM merges, captured once per video, as kept-token counts for any thresholds.

The lmms-eval model runs its own pipeline on each video (``encode``: decode, sample, vision tower;
``prompt`` and ``prefix_inputs``: the video prefix every question shares) and the engine's prefill
with :class:`CountingReducer` in STTM's place: at layer k it receives exactly the hidden states
``[T*H*W, C]`` STTM would merge, builds their ``SttmCounts`` (every similarity computed once;
``count(tau_s, tau_t)`` is then a few vector operations) and returns a plan that merges the whole
video into one token, so the layers from k on run on a short sequence. The search
(:mod:`lmms_sttm.calibrate.search`) then counts any threshold pair on every video without
another forward.
"""

from __future__ import annotations

import importlib
import sys
import time
from dataclasses import dataclass

import torch

from lmms_sttm.merging.groups import from_groups
from lmms_sttm.merging.reduction import Reduction
from lmms_sttm.merging.sttm import check_inputs, pyramid_features
from lmms_sttm.merging.sttm_counts import SttmCounts
from lmms_sttm.merging.threads import bookkeeping_threads

#: model_args the calibration sets itself (the method and its thresholds are what it measures)
RESERVED = ("pretrained", "method", "budget", "budget_mode", "retention", "tau_s", "tau_t", "thresholds")


class CountingReducer:
    """Engine reducer that records STTM's kept-token counts of the video it sees and keeps one token.

    ``counts``: the ``SttmCounts`` of the last video (its features are released: counting never
    reads them); ``grid``: that video's ``(T, H, W)``.
    """

    needs_attention = False

    def __init__(self, root_level: int = 1, union_find: str = "authors", merge_dtype: str = "input") -> None:
        self.root_level, self.union_find, self.merge_dtype = root_level, union_find, merge_dtype
        self.counts: SttmCounts | None = None
        self.grid: tuple[int, int, int] | None = None

    def __call__(self, hidden: torch.Tensor, grid: tuple[int, int, int]) -> Reduction:
        t, h, w = grid
        x = hidden.reshape(t, h, w, hidden.shape[-1])
        check_inputs(x, 1.0, 1.0, self.root_level, self.union_find, self.merge_dtype)
        with torch.no_grad(), bookkeeping_threads(x.device):
            pyr, _, feats, norms = pyramid_features(x, self.root_level, self.merge_dtype)
            counts = SttmCounts(pyr, feats, norms, dtype=x.dtype, union_find=self.union_find)
        counts.leaves = None  # only ``plan`` reads the features; the next video may reuse their memory
        self.counts, self.grid = counts, (t, h, w)
        labels = torch.zeros(hidden.shape[0], dtype=torch.long, device=hidden.device)
        return from_groups(hidden, labels, grid)


@dataclass
class CapturedVideo:
    """One calibration video: its counts and what it cost."""

    task: str
    path: str
    doc_id: int
    grid: tuple[int, int, int]
    tokens: int
    frames: int | None
    seconds: float
    counts: SttmCounts

    def count(self, tau_s: float, tau_t: float) -> int:
        return self.counts.count(tau_s, tau_t)

    def as_dict(self) -> dict:
        return {
            "video": self.path,
            "doc_id": self.doc_id,
            "frames": self.frames,
            "grid": list(self.grid),
            "tokens": self.tokens,
            "seconds": round(self.seconds, 3),
        }


def load_model(model: str, pretrained: str, model_args: dict, stats_dir: str):
    """The lmms-eval model ``model`` (one of this package's video models) on ``pretrained``, set up
    for STTM with ``model_args`` (frames, dtype, merge layer, STTM options, ...)."""
    from lmms_sttm.models import MODEL_CLASSES
    from lmms_sttm.models.base import SttmVideoModel

    if model not in MODEL_CLASSES:
        raise ValueError(f"--model {model!r} is not one of this package's models: {sorted(MODEL_CLASSES)}")
    module, _, name = MODEL_CLASSES[model].rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    if not issubclass(cls, SttmVideoModel):
        raise ValueError(f"--model {model} does not run a video LLM (nothing to calibrate)")
    reserved = sorted(set(model_args) & set(RESERVED))
    if reserved:
        raise ValueError(f"--model_args may not set {reserved}: the calibration chooses them")
    args = {"warmup": False, "prefetch": 0, **model_args, "stats_dir": stats_dir}
    return cls(pretrained=pretrained, method="sttm", tau_s=1.0, tau_t=1.0, **args)


def task_videos(tasks: list[str]) -> dict[str, list[tuple[str, int, str]]]:
    """Per leaf task (groups expanded), its distinct videos in document order: ``(path, doc id, prompt
    text of the first question on it)``."""
    from lmms_eval.tasks import TaskManager, get_task_dict

    found: dict[str, list[tuple[str, int, str]]] = {}

    def walk(tree: dict) -> None:
        for key, value in tree.items():
            if isinstance(value, dict):
                walk(value)
            elif value is not None:
                name = getattr(value.config, "task", None) or str(key)
                seen: dict[str, tuple[str, int, str]] = {}
                for doc_id, doc in enumerate(value.eval_docs):
                    paths = value.doc_to_visual(doc)
                    if len(paths) != 1:
                        raise ValueError(f"{name} doc {doc_id}: expected one video, got {len(paths)} visuals")
                    path = str(paths[0])
                    if path not in seen:
                        seen[path] = (path, doc_id, value.doc_to_text(doc))
                found[name] = list(seen.values())

    from lmms_sttm._task_path import TASKS_DIR

    manager = TaskManager(include_defaults=False, include_path=TASKS_DIR)  # this package's tasks: fast
    if any(t not in manager.all_tasks for t in tasks):
        manager = TaskManager()  # lmms-eval's own tasks too (indexing them takes seconds)
    walk(get_task_dict(tasks, manager))
    return found


def spread(items: list, n: int) -> list:
    """``n`` items evenly spaced over ``items`` (all of them when ``n >= len(items)``): benchmark
    files are often ordered (VideoMME by duration), so the first ``n`` would not be a sample."""
    if n >= len(items):
        return list(items)
    return [items[(i * len(items)) // n] for i in range(n)]


def capture(model, task: str, path: str, doc_id: int, text: str, reducer: CountingReducer) -> CapturedVideo:
    """Runs ``model``'s pipeline and prefill on one video with ``reducer`` at its merge layer."""
    from lmms_sttm.engine import session

    began = time.perf_counter()
    video, time_text, facts = model.encode(path, task)
    prompt = model.prompt(text, time_text)
    inputs, _ = model.prefix_inputs(prompt.prefix, video)
    session.prefill(model.engine, inputs, reducer, video.grid, timestamps=video.timestamps)
    if reducer.counts is None:
        raise RuntimeError(f"{path}: the engine never called the reducer (no video span reduced)")
    counts, grid = reducer.counts, reducer.grid
    reducer.counts = None
    seconds = time.perf_counter() - began
    t, h, w = grid
    return CapturedVideo(task, path, doc_id, grid, t * h * w, facts.get("frames"), seconds, counts)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
