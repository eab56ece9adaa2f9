"""Finding and filtering our per-answer statistics files for one lmms-eval run.

The models write ``<output_path>/sttm_stats/<model>_rank<r>.jsonl`` (or under ``stats_dir=``),
one record per answer (:mod:`lmms_sttm.models.stats`); failed requests have only ``model``,
``task``, ``doc_id``, ``error`` and ``rank``. A later run into the same ``--output_path``
appends to the files (one record per question is kept, the latest), so records are checked
against the run's settings before they are used.
"""

from __future__ import annotations

from pathlib import Path

from lmms_sttm.models.stats import deduplicate
from lmms_sttm.report.jsonl import read_jsonl


def stats_dir_candidates(results_path: Path, results: dict, args: dict[str, str]) -> list[Path]:
    """Where the run's statistics may be, most specific first."""
    out: list[Path] = []
    if args.get("stats_dir"):
        out.append(Path(args["stats_dir"]))
    parent = results_path.parent
    sanitized = results.get("model_name_sanitized")
    base = parent.parent if sanitized and parent.name == sanitized else parent
    out.append(base / "sttm_stats")
    cli = (results.get("config") or {}).get("resolved_cli_args") or {}
    if cli.get("output_path"):
        out.append(Path(cli["output_path"]) / "sttm_stats")
    return out


def find_stats_dir(candidates: list[Path]) -> Path | None:
    return next((d for d in candidates if d.is_dir() and any(d.glob("*_rank*.jsonl"))), None)


def load_stats(directory: Path, model: str) -> list[dict]:
    """All records of ``model`` in ``directory``'s per-rank files (records without a model kept)."""
    records: list[dict] = []
    for path in sorted(directory.glob("*_rank*.jsonl")):
        records += [r for r in read_jsonl(path) if r.get("model", model) == model]
    return deduplicate(records)  # files are appended to: a resumed run may have answered a question twice


def mismatch(record: dict, method: str, args: dict[str, str]) -> str | None:
    """Why a successful record cannot come from a run with this method and these arguments."""
    if record.get("method") is not None and record["method"] != method:
        return f"method={record['method']}"
    params = record.get("params") or {}
    for key in ("tau_s", "tau_t", "root_level"):
        if key in args and key in params and params[key] is not None:
            try:
                if float(params[key]) != float(args[key]):
                    return f"{key}={params[key]}"
            except ValueError:
                return f"{key}={params[key]}"
    layer = record.get("merge_layer")
    if "merge_layer" in args and layer is not None and str(layer) != args["merge_layer"]:
        return f"merge_layer={layer}"
    return None
