"""One benchmark's task glue: reading its reformatted docs, the prompt, scoring and the data root.

A task folder's ``utils.py`` builds one :class:`Benchmark` and exposes its bound methods under
the names its YAML references (``doc_to_text``, ``process_results``, ...).

``process_results`` returns one key per metric of the task's YAML and nothing else: lmms-eval
treats every returned key as a metric, and a record field there leaves empty entries in
``results.json`` that break its W&B logger. The question's record (``question_id``,
``video_id``, ``task_type``, ``duration``, ``pred``, ``answer``, ``parsed``, ``correct`` and the
benchmark's extra fields) travels inside the ``sttm_acc`` value, which lmms-eval writes into
each line of the samples log (it drops the doc itself from that log):

- ``sttm_acc``: ``{"score": 0 or 100, **record}``; mean = the paper's accuracy in percent
  (``score`` is lmms-eval's default ``score_key``, ``video_id`` the ``cluster_key``).
- ``unparsed``: 1 when the parser read no letter, else 0; summed.
- ``acc_<field>=<value>`` for each breakdown field (``duration``, ``task_type``, ...) and the
  question's value of it: the ``sttm_acc`` value, so each group is a metric of its own with
  lmms-eval's clustered standard error (one console row each, not a dict in one cell); VNBench
  adds ``circular_task_type=<type>`` (the record; all 4 tries right). The task's ``metric_list``
  (:meth:`Benchmark.metric_list`) names every group present in the annotation file.
- ``official_acc`` (VNBench, MLVU): the record; the benchmark authors' metric.
- the efficiency metrics (``visual_tokens``, ``visual_tokens_kept``, ``retained_pct``, ``ttft_ms``,
  ``merge_ms``; :mod:`lmms_sttm.tasks.common.efficiency`), from the answer's statistics.

A benchmark without answers (EgoSchema's full set) returns ``unparsed`` and ``submission``
(``{"answer_index", **record}``) instead of the scores.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from loguru import logger

from lmms_sttm import data_root
from lmms_sttm.tasks.common import aggregations, efficiency, metrics
from lmms_sttm.tasks.common.parse import parse_answer
from lmms_sttm.tasks.common.prompt import LETTERS, mcq_text
from lmms_sttm.tasks.common.sharding import shard_by_video


@dataclass(frozen=True)
class Benchmark:
    """How one benchmark's reformatted annotation file is read and scored.

    Attributes:
        name: the folder under the data root (``vnbench``, ``videomme``, ...).
        annotation: the file name under ``<root>/<name>/annotations/``.
        video_field: the doc field holding the video file stem (``<root>/<name>/videos/<stem>.mp4``).
        letters: the letters the parser looks for (A-D, A-E, or A-F for LongVideoBench).
        guard_letters: letters that lift the 10-word rule, when they differ from ``letters``.
        letters_per_option: the prompt names one letter per option (LongVideoBench, 3 to 6 options)
            instead of all of ``letters``.
        prefixed_options: options already read "A. ..." (Video-MME, VNBench).
        option_fields: per-option fields (EgoSchema's ``option 0`` ...); empty for an ``options`` list.
        question_id_field: the doc field holding the question id.
        breakdowns: record fields the ``breakdown`` metric groups by.
        extra_fields: doc fields copied into the record (and the samples log).
        official: the authors' metric when it differs from plain accuracy: ``"circular"`` or ``"macro"``.
        scored: whether the docs carry answers (False for EgoSchema's full set).
    """

    name: str
    annotation: str
    video_field: str
    letters: str = "ABCD"
    guard_letters: str | None = None
    letters_per_option: bool = False
    prefixed_options: bool = False
    option_fields: tuple[str, ...] = ()
    question_id_field: str = "question_id"
    breakdowns: tuple[str, ...] = ("duration", "task_type")
    extra_fields: tuple[str, ...] = ()
    official: str | None = None
    scored: bool = True

    # ---- reading docs -------------------------------------------------------------------
    def process_docs(self, dataset):
        """Video-major order for any world size dividing 8 (prefix reuse survives lmms-eval's sharding)."""
        return shard_by_video(dataset, self.video_field)

    def options(self, doc: dict) -> list[str]:
        if self.option_fields:
            return [doc[f] for f in self.option_fields]
        return list(doc["options"])

    def gold(self, doc: dict) -> str:
        """The correct letter; answers stored as 0-based indices (LVB, EgoSchema) are converted."""
        answer = doc.get("answer")
        if answer is None or answer == "":
            if self.scored:
                raise ValueError(f"{self.name}: doc {doc.get(self.question_id_field)!r} has no answer")
            return ""
        letters = LETTERS[: len(self.options(doc))]
        letter = answer if isinstance(answer, str) else LETTERS[int(answer)]
        if letter not in letters:
            raise ValueError(
                f"{self.name}: doc {doc.get(self.question_id_field)!r} has answer {answer!r}, not one of {letters}"
            )
        return letter

    def required_fields(self) -> set[str]:
        fields = {self.question_id_field, self.video_field, "question", *self.extra_fields}
        fields |= set(self.option_fields) if self.option_fields else {"options"}
        fields |= set(self.breakdowns)
        if self.scored:
            fields.add("answer")
        return fields

    # ---- lmms-eval hooks ----------------------------------------------------------------
    def dataset_kwargs(self) -> dict:
        """``load_dataset("json", ...)`` arguments for the annotation file under the current data root.

        Runs when lmms-eval loads the task's YAML: it checks that the file and the video folder
        exist (:class:`~lmms_sttm.data_root.DataRootError`), that every record has the fields and
        a valid answer (ValueError; an official file put in the wrong place fails here), and warns
        about missing videos. Checking here, not in ``process_docs``, keeps lmms-eval's download
        retries from repeating a load that cannot succeed.
        """
        path = data_root.require_annotation(self.name, self.annotation)
        videos = data_root.require_video_dir(self.name)
        records = json.loads(path.read_text(encoding="utf-8"))
        self.check_records(records, path)
        self.warn_missing_videos(records, videos)
        return {"data_files": {"test": str(path)}}

    def check_records(self, records, path) -> None:
        """Raise ValueError unless ``records`` is a list of docs in this benchmark's reformatted schema."""
        if not isinstance(records, list) or not records:
            raise ValueError(f"{self.name}: {path} should hold a non-empty JSON list of questions")
        required = self.required_fields()
        for i, rec in enumerate(records):
            missing = required - set(rec)
            if missing:
                raise ValueError(
                    f"{self.name}: record {i} of {path} lacks the fields {sorted(missing)} of the reformatted "
                    f"schema; is it an official file? Prepare the file with:\n  {data_root.prepare_command(self.name)}"
                )
            self.gold(rec)

    def warn_missing_videos(self, records: list[dict], videos) -> None:
        stems = sorted({str(r[self.video_field]) for r in records})
        absent = [s for s in stems if not (videos / f"{s}.mp4").is_file()]
        if absent:
            logger.warning(
                f"{self.name}: {len(absent)} of {len(stems)} videos are missing from {videos} "
                f"(e.g. {absent[:3]}); the model gets no video for their questions"
            )

    def doc_to_visual(self, doc: dict) -> list[str]:
        return [str(data_root.video_dir(self.name) / f"{doc[self.video_field]}.mp4")]

    def doc_to_text(self, doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
        n_letters = None if self.letters_per_option else len(self.letters)
        return mcq_text(
            doc["question"], self.options(doc), prefixed=self.prefixed_options, n_letters=n_letters
        )

    def doc_to_target(self, doc: dict) -> str:
        return self.gold(doc)

    def record(self, doc: dict, response: str) -> dict:
        """The per-question facts the samples log and the aggregations use."""
        pred = parse_answer(response, self.letters, self.guard_letters)
        gold = self.gold(doc)
        rec = {
            "question_id": doc[self.question_id_field],
            "video_id": doc[self.video_field],
            "task_type": doc.get("task_type"),
            "duration": doc.get("duration"),
            "pred": pred,
            "answer": gold,
            "parsed": pred != "",
            "correct": (pred == gold) if gold else None,
        }
        for field in (*self.breakdowns, *self.extra_fields):
            rec.setdefault(field, doc[field])
        return rec

    def process_results(self, doc: dict, results: list[str]) -> dict:
        """Metrics only (see the module docstring); the record rides in ``sttm_acc`` / ``submission``."""
        rec = self.record(doc, results[0] if results else "")
        out = {"unparsed": int(not rec["parsed"])}
        if not self.scored:
            index = LETTERS.index(rec["pred"]) if rec["parsed"] else None
            out["submission"] = {**rec, "answer_index": index}
            out.update(efficiency.efficiency_values(results[0] if results else None))
            return out
        out["sttm_acc"] = score = {"score": 100.0 if rec["correct"] else 0.0, **rec}
        for field in self.breakdowns:
            out[group_metric("acc", field, rec[field])] = score
        if self.official == "circular":
            out[group_metric("circular", "task_type", rec["task_type"])] = rec
        if self.official:
            out["official_acc"] = rec
        out.update(efficiency.efficiency_values(results[0] if results else None))
        return out

    def metric_list(self) -> list[dict]:
        """The task's lmms-eval ``metric_list``: accuracy, a metric per breakdown group, efficiency.

        The groups are the breakdown fields' values in the annotation file (read when lmms-eval
        loads the YAML, like :meth:`dataset_kwargs`); a group without answered questions (under
        ``--limit``) is absent from the results.
        """
        if not self.scored:
            raise ValueError(f"{self.name}: a task without answers lists its own metrics")
        out = [
            {"metric": "sttm_acc", "aggregation": aggregations.mean_score, "higher_is_better": True},
            {"metric": "unparsed", "aggregation": aggregations.total, "higher_is_better": False},
        ]
        if self.official:
            out.append({"metric": "official_acc", "aggregation": self.official_acc, "higher_is_better": True})
        records = json.loads(
            data_root.require_annotation(self.name, self.annotation).read_text(encoding="utf-8")
        )
        for field in self.breakdowns:
            for value in sorted({str(r[field]) for r in records}):
                name = group_metric("acc", field, value)
                out.append({"metric": name, "aggregation": aggregations.mean_score, "higher_is_better": True})
        if self.official == "circular":
            for value in sorted({str(r["task_type"]) for r in records}):
                name = group_metric("circular", "task_type", value)
                out.append({"metric": name, "aggregation": aggregations.circular, "higher_is_better": True})
        return out + efficiency.metric_specs()

    # ---- aggregations ---------------------------------------------------------------------
    def breakdown(self, records: list[dict]) -> dict[str, dict[str, float]]:
        """Accuracy per value of each breakdown field (and per task type, circular, for VNBench)."""
        out = {field: metrics.accuracy_by(records, field) for field in self.breakdowns}
        if self.official == "circular":
            out["task_type_circular"] = metrics.circular_accuracy_by_type(records)
        return out

    def official_acc(self, records: list[dict]) -> float:
        if self.official == "circular":
            return metrics.circular_accuracy(records)
        if self.official == "macro":
            return metrics.macro_accuracy(records, "task_type")
        raise ValueError(f"{self.name} has no separate official metric")


def group_metric(prefix: str, field: str, value) -> str:
    """``acc_task_type=ret_insert1``: a breakdown group's metric name (no ``,`` or ``/``, which
    lmms-eval's table and W&B logger split on; spaces become ``_``)."""
    clean = "_".join(str(value).replace(",", " ").replace("/", " ").split())
    return f"{prefix}_{field}={clean}"


#: the task functions a benchmark's ``utils.py`` serves to its YAML (``!function utils.<name>``)
TASK_FUNCTIONS = (
    "doc_to_visual", "process_docs", "doc_to_text", "doc_to_target", "process_results", "breakdown", "official_acc",
)  # fmt: skip


def task_module(bench: Benchmark):
    """The PEP 562 ``__getattr__`` of a task's ``utils.py`` that serves ``bench``'s task functions.

    ``utils.<name>`` for a name in :data:`TASK_FUNCTIONS` is the bound method; ``utils.dataset_kwargs``
    is computed when lmms-eval reads it (see :func:`lazy_module_attributes`).
    """
    lazy = lazy_module_attributes(dataset_kwargs=bench.dataset_kwargs, metric_list=bench.metric_list)

    def __getattr__(name: str):
        return getattr(bench, name) if name in TASK_FUNCTIONS else lazy(name)

    return __getattr__


def lazy_module_attributes(**factories):
    """A module ``__getattr__`` (PEP 562) answering each name by calling its factory.

    Task YAMLs write ``dataset_kwargs: !function utils.dataset_kwargs``: lmms-eval's YAML loader
    then ``getattr``s the task's ``utils`` module, and the factory resolves the data root at that
    moment. lmms-eval loads a task's full YAML only when the task is selected, so a missing data
    root fails that task alone, with :class:`lmms_sttm.data_root.DataRootError`.
    """

    def __getattr__(name: str):
        if name in factories:
            return factories[name]()
        raise AttributeError(f"module has no attribute {name!r}")

    return __getattr__
