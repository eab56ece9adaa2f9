"""STTM thresholds calibrated for a model the paper never tuned: the file ``thresholds=FILE`` reads.

``python -m lmms_sttm.calibrate`` writes it (:mod:`lmms_sttm.calibrate`); with ``thresholds=FILE``,
``budget=50`` / ``budget=30`` take ``(tau_s, tau_t)`` from the file's entry for the run's task and
that budget instead of the paper's table (:mod:`lmms_sttm.methods.sttm_thresholds`). The file
holds one JSON object (``FORMAT``)::

    {"format": "lmms_sttm.sttm_thresholds/1",
     "model": "qwen2_5_vl_sttm",                      # the lmms-eval model name
     "checkpoint": {"pretrained": "...", "config_sha256": "..."},
     "merge_layer": 2,
     "sttm": {"root_level": 1, "union_find": "authors", "merge_dtype": "input"},
     "tasks": {"videomme_sttm": {"videos": [...],
                                 "targets": {"50": {"retention": 0.5, "tau_s": 0.87, "tau_t": 0.67,
                                                    "reached": 0.503, "within_tolerance": true, ...},
                                             "30": {...}}}},
     ...}                                             # search settings, versions: recorded only

A target's key is its retention in percent (0.5 -> ``"50"``), the value ``budget=`` takes. The
thresholds apply only where they were measured: the same model name, a checkpoint with the same
configuration (``config_sha256``), the same merge layer and STTM options, the same task; anything
else is an error naming the difference.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

FORMAT = "lmms_sttm.sttm_thresholds/1"
#: STTM settings that change the kept count at given thresholds (recorded and checked)
STTM_OPTIONS = ("root_level", "union_find", "merge_dtype")


def budget_key(retention: float) -> str:
    """The entry name of a target retention: its percentage (``0.3 -> "30"``)."""
    pct = 100.0 * retention
    if not 0 < retention < 1 or abs(pct - round(pct)) > 1e-9:
        raise ValueError(f"retention {retention!r} must be in (0, 1) with a whole percentage (e.g. 0.3)")
    return str(round(pct))


class ThresholdsFileError(ValueError):
    """A ``thresholds=FILE`` that is missing, malformed or does not fit the run."""


def _fail(path, why: str) -> ThresholdsFileError:
    return ThresholdsFileError(f"model_args thresholds={path}: {why}")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_target(path, task: str, key: str, entry) -> None:
    where = f"tasks.{task}.targets.{key}"
    if not isinstance(entry, dict):
        raise _fail(path, f"malformed: {where} is not an object")
    for name in ("retention", "tau_s", "tau_t", "reached"):
        if not _number(entry.get(name)):
            raise _fail(path, f"malformed: {where}.{name} is missing or not a number")
    if not isinstance(entry.get("within_tolerance"), bool):
        raise _fail(path, f"malformed: {where}.within_tolerance is missing or not true/false")
    try:
        fits = key == budget_key(entry["retention"])
    except ValueError:
        fits = False
    if not fits:
        raise _fail(path, f"malformed: {where} holds retention {entry['retention']!r}")


def load(path: str | Path) -> dict:
    """The file's object, checked for the fields ``thresholds=`` reads; ``ThresholdsFileError`` otherwise."""
    p = Path(path)
    if not p.is_file():
        raise _fail(path, "no such file (write one with python -m lmms_sttm.calibrate)")
    try:
        data = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _fail(path, f"malformed: not a JSON file ({e})") from e
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise _fail(path, f"malformed: format is {got!r}, expected {FORMAT!r}")
    if not isinstance(data.get("model"), str) or not data["model"]:
        raise _fail(path, "malformed: model is missing")
    ckpt = data.get("checkpoint")
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("config_sha256"), str):
        raise _fail(path, "malformed: checkpoint.config_sha256 is missing")
    layer = data.get("merge_layer")
    if not isinstance(layer, int) or isinstance(layer, bool) or layer < 0:
        raise _fail(path, "malformed: merge_layer is missing or not a non-negative integer")
    sttm = data.get("sttm")
    if not isinstance(sttm, dict) or any(k not in sttm for k in STTM_OPTIONS):
        raise _fail(path, f"malformed: sttm must hold {list(STTM_OPTIONS)}")
    tasks = data.get("tasks")
    if not isinstance(tasks, dict) or not tasks:
        raise _fail(path, "malformed: tasks is missing or empty")
    for task, block in tasks.items():
        targets = block.get("targets") if isinstance(block, dict) else None
        if not isinstance(targets, dict) or not targets:
            raise _fail(path, f"malformed: tasks.{task}.targets is missing or empty")
        for key, entry in targets.items():
            _check_target(path, task, key, entry)
    return data


def lookup(path: str | Path, budget: int, *, model, checkpoint, layer: int, task: str, options: dict):
    """``(tau_s, tau_t)`` of the file's entry for ``task`` at ``budget`` percent.

    ``model`` / ``checkpoint``: the run's lmms-eval model name and configuration fingerprint
    (``models/identity.config_fingerprint``); ``layer``: its merge layer; ``options``: its STTM
    settings (``STTM_OPTIONS``). Raises ``ThresholdsFileError`` naming the first difference.
    """
    data = load(path)
    if model is None or checkpoint is None:
        raise _fail(
            path, "the run does not say which model and checkpoint it is (BuildContext.model/checkpoint)"
        )
    if data["model"] != model:
        raise _fail(path, f"calibrated for --model {data['model']}, this run is {model}")
    ckpt = data["checkpoint"]
    if ckpt["config_sha256"] != checkpoint:
        raise _fail(
            path,
            f"calibrated on checkpoint {ckpt.get('pretrained')!r}, whose configuration differs from this run's "
            "checkpoint: calibrate this checkpoint",
        )
    if data["merge_layer"] != layer:
        raise _fail(
            path, f"calibrated at merge_layer={data['merge_layer']}, this run merges at layer {layer}"
        )
    for name in STTM_OPTIONS:
        if data["sttm"][name] != options[name]:
            raise _fail(
                path, f"calibrated with {name}={data['sttm'][name]!r}, this run has {name}={options[name]!r}"
            )
    tasks = data["tasks"]
    if task not in tasks:
        raise _fail(path, f"no entry for task {task!r} (calibrated tasks: {sorted(tasks)})")
    targets = tasks[task]["targets"]
    key = str(budget)
    if key not in targets:
        raise _fail(
            path,
            f"no entry for budget={budget} on {task} (calibrated budgets: {sorted(targets, key=int, reverse=True)}); "
            f"run python -m lmms_sttm.calibrate with --retention {budget / 100:g}",
        )
    entry = targets[key]
    if not entry["within_tolerance"]:
        raise _fail(
            path,
            f"the {budget}% calibration on {task} missed its target (mean retention {entry['reached']:.4f}); "
            "calibrate on more videos or pass tau_s and tau_t by hand",
        )
    return float(entry["tau_s"]), float(entry["tau_t"])
