"""Loading lmms-eval runs: results.json, the per-task samples logs and our statistics records.

One :class:`Run` per ``<timestamp>_results.json`` found (recursively) under the given
directories, with a :class:`TaskRun` per evaluated task (group entries are skipped).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from lmms_sttm.report import stats_files
from lmms_sttm.report.benchmarks import Column, column_for, metric_for
from lmms_sttm.report.errors import ReportError
from lmms_sttm.report.jsonl import read_jsonl
from lmms_sttm.report.model_args import method_of, parse_model_args

RESULTS_SUFFIX = "_results.json"


@dataclass
class TaskRun:
    """One task of one run.

    Attributes:
        accuracy: the task's headline metric (percent), ``None`` when absent or not scored.
        metric: the results.json metric read (``None``: not scored locally).
        n_original / n_effective: lmms-eval's ``n-samples`` (effective < original under ``--limit``).
        samples: the samples log's records, ``None`` without ``--log_samples``.
        stats: successful per-answer statistics records; ``failures``: failed requests.
        stats_found: whether any statistics record of this run covers the task.
        stderr: the accuracy's standard error from the results file (percent points): lmms-eval's
            clustered one where the task groups questions by video (``cluster_key``), else its
            CLT one, else its bootstrap one; ``stderr_kind`` names which.
    """

    task: str
    column: Column
    accuracy: float | None
    metric: str | None
    n_original: int | None
    n_effective: int | None
    samples: list[dict] | None
    stats: list[dict] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    stats_found: bool = False
    stderr: float | None = None
    stderr_kind: str | None = None

    def doc_ids(self) -> set | None:
        """The questions this task answered (from the samples log, else from the statistics)."""
        if self.samples is not None:
            return {s.get("doc_id") for s in self.samples}
        if self.stats_found:
            return {r.get("doc_id") for r in self.stats + self.failures}
        return None


@dataclass
class Run:
    """One lmms-eval results file and what belongs to it."""

    path: Path
    timestamp: str
    model: str
    model_args_text: str
    args: dict[str, str]
    pretrained: str
    method: str
    lmms_eval_version: str
    date: str
    command: str
    limit: object
    git_hash: str | None
    eval_seconds: float | None
    stats_dir: Path | None
    tasks: dict[str, TaskRun]
    warnings: list[str] = field(default_factory=list)
    provenance: dict | None = None


def read_provenance(stats_dir: Path | None) -> dict | None:
    """Rank 0's ``provenance_rank0.json`` (versions, device, command; :mod:`lmms_sttm.models.provenance`)."""
    path = stats_dir / "provenance_rank0.json" if stats_dir is not None else None
    if path is None or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def accuracy_stderr(values: dict, metric: str) -> tuple[float | None, str | None]:
    """``(stderr, kind)`` of ``metric`` in one task's results: clustered, else CLT, else bootstrap."""
    for kind, key in (("clustered", "_stderr_clustered"), ("clt", "_stderr_clt"), ("bootstrap", "_stderr")):
        value = values.get(f"{metric}{key},none")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
            return float(value), kind
    return None, None


def find_results(dirs: list[str | Path]) -> list[Path]:
    """Every ``*_results.json`` under each directory (a results file may be given directly)."""
    found: dict[Path, None] = {}
    for d in dirs:
        d = Path(d)
        if d.is_file() and d.name.endswith(RESULTS_SUFFIX):
            found[d.resolve()] = None
            continue
        if not d.exists():
            raise ReportError(f"{d}: no such file or directory")
        if not d.is_dir():
            raise ReportError(f"{d}: neither a directory nor an lmms-eval *{RESULTS_SUFFIX} file")
        hits = sorted(p for p in d.rglob(f"*{RESULTS_SUFFIX}") if p.is_file())
        if not hits:
            raise ReportError(
                f"{d}: no lmms-eval results file (*{RESULTS_SUFFIX}) under this directory; pass the "
                "--output_path of a finished lmms-eval run (a failed run writes none: see its log)"
            )
        for p in hits:
            found[p.resolve()] = None
    return list(found)


def load_runs(dirs: list[str | Path], metric_overrides: dict[str, str | None] | None = None) -> list[Run]:
    """All runs under ``dirs``, oldest first."""
    runs = [load_run(p, metric_overrides) for p in find_results(dirs)]
    return sorted(runs, key=lambda r: (r.timestamp, str(r.path)))


def _read_results(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ReportError(f"{path}: not a readable lmms-eval results file ({e})") from e
    if not isinstance(data, dict) or "results" not in data or "config" not in data:
        raise ReportError(f"{path}: not an lmms-eval results file (no 'results' and 'config' keys)")
    return data


def command_line(config: dict) -> str:
    """The lmms-eval command line, rebuilt from ``config.resolved_cli_args`` (or ``config``)."""
    cli = config.get("resolved_cli_args") or {}
    parts = ["python", "-m", "lmms_eval"]
    flags = ("model", "model_args", "tasks", "batch_size", "limit", "offset", "gen_kwargs", "include_path")
    for key in flags:
        value = cli.get(key, config.get(key))
        if value in (None, "", 0) and key != "batch_size":
            continue
        parts += [f"--{key}", str(value)]
    if cli.get("log_samples"):
        parts.append("--log_samples")
    if cli.get("output_path"):
        parts += ["--output_path", str(cli["output_path"])]
    return " ".join(shlex.quote(p) for p in parts)


def load_run(path: Path, metric_overrides: dict[str, str | None] | None = None) -> Run:
    """Read one results file with its samples logs and statistics records."""
    data = _read_results(path)
    config = data["config"] or {}
    model = str(config.get("model") or "?")
    args_text = str(config.get("model_args") or "")
    args = parse_model_args(args_text)
    method = method_of(model, args)
    timestamp = path.name[: -len(RESULTS_SUFFIX)]
    subtasks = data.get("group_subtasks") or {}
    groups = {name for name, members in subtasks.items() if members}
    n_samples = data.get("n-samples") or {}
    warnings: list[str] = []

    tasks: dict[str, TaskRun] = {}
    for task, values in sorted((data.get("results") or {}).items()):
        if task in groups:
            continue
        metric = metric_for(task, metric_overrides)
        accuracy = None
        if metric is not None:
            value = values.get(f"{metric},none")
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                accuracy = float(value)
            else:
                warnings.append(f"{task}: no numeric '{metric},none' in {path.name}")
        samples_path = path.parent / f"{timestamp}_samples_{task}.jsonl"
        samples = read_jsonl(samples_path) if samples_path.is_file() else None
        n = n_samples.get(task) or {}
        stderr, kind = accuracy_stderr(values, metric) if metric is not None else (None, None)
        tasks[task] = TaskRun(
            task=task,
            column=column_for(task),
            accuracy=accuracy,
            metric=metric,
            n_original=n.get("original"),
            n_effective=n.get("effective"),
            samples=samples,
            stderr=stderr,
            stderr_kind=kind,
        )

    stats_dir = stats_files.find_stats_dir(stats_files.stats_dir_candidates(path, data, args))
    if stats_dir is not None:
        _attach_stats(tasks, stats_files.load_stats(stats_dir, model), method, args, stats_dir, warnings)
    elif model.endswith("_sttm"):
        warnings.append(f"no sttm_stats files found for {path}: NV, TTFT and failures unknown")

    seconds = data.get("total_evaluation_time_seconds")
    return Run(
        path=path,
        timestamp=timestamp,
        model=model,
        model_args_text=args_text,
        args=args,
        pretrained=args.get("pretrained", "").rstrip("/"),
        method=method,
        lmms_eval_version=str(data.get("lmms_eval_version", "?")),
        date=str(data.get("date", timestamp)),
        command=command_line(config),
        limit=config.get("limit"),
        git_hash=data.get("git_hash"),
        eval_seconds=float(seconds) if seconds not in (None, "") else None,
        stats_dir=stats_dir,
        tasks=tasks,
        warnings=warnings,
        provenance=read_provenance(stats_dir),
    )


def _attach_stats(tasks, records, method, args, stats_dir, warnings) -> None:
    """Give each task its statistics records, dropping (with a warning) those of another run."""
    foreign: dict[str, str] = {}
    for record in records:
        task = tasks.get(record.get("task"))
        if task is None:
            continue
        if record.get("error") is not None:
            task.failures.append(record)
            task.stats_found = True
            continue
        why = stats_files.mismatch(record, method, args)
        if why is not None:
            foreign.setdefault(task.task, why)
            continue
        task.stats.append(record)
        task.stats_found = True
    for name, why in foreign.items():
        task = tasks[name]
        if not task.stats:  # nothing of this run left: its failure records cannot be told apart either
            task.failures, task.stats_found = [], False
        warnings.append(
            f"{name}: ignored statistics records in {stats_dir} with {why}, not from this run "
            "(another run wrote to the same --output_path?)"
        )
    for task in tasks.values():
        if not task.stats_found:
            warnings.append(f"{task.task}: no statistics records in {stats_dir}")
        elif task.samples is not None:
            extra = {r.get("doc_id") for r in task.stats + task.failures} - task.doc_ids()
            if extra:
                warnings.append(
                    f"{task.task}: {len(extra)} statistics records name questions not in the samples log"
                )
