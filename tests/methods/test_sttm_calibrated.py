"""``thresholds=FILE`` with ``budget=50|30``: STTM reads the calibration file's thresholds instead of
the paper's (same plans as those thresholds given by hand), and every way the file can be missing,
malformed or meant for another run fails with a message naming it."""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest
import torch

from lmms_sttm.merging.sttm import SttmReducer
from lmms_sttm.methods import registry
from lmms_sttm.methods.bind import bind
from lmms_sttm.methods.spec import BuildContext
from lmms_sttm.methods.sttm_calibrated import FORMAT, ThresholdsFileError, budget_key
from lmms_sttm.models.settings import ModelSettings

MODEL, CKPT, TASK = "qwen2_5_vl_sttm", "a1b2c3", "videomme_sttm"
GOOD = {
    "format": FORMAT,
    "model": MODEL,
    "checkpoint": {"pretrained": "Qwen/Qwen2.5-VL-7B-Instruct", "config_sha256": CKPT},
    "merge_layer": 2,
    "sttm": {"root_level": 1, "union_find": "authors", "merge_dtype": "input"},
    "tasks": {
        TASK: {
            "videos": [],
            "targets": {
                "50": {
                    "retention": 0.5,
                    "tau_s": 0.87,
                    "tau_t": 0.67,
                    "reached": 0.503,
                    "within_tolerance": True,
                },
                "30": {
                    "retention": 0.3,
                    "tau_s": 0.81,
                    "tau_t": 0.52,
                    "reached": 0.297,
                    "within_tolerance": True,
                },
            },
        }
    },
}


def _write(tmp_path, data=GOOD, name="cal.json") -> str:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def _edited(edit) -> dict:
    data = copy.deepcopy(GOOD)
    edit(data)
    return data


def _ctx(settings: ModelSettings, task=TASK, model=MODEL, checkpoint=CKPT, layer=2) -> BuildContext:
    return BuildContext(
        "qwen", "qwen2_5_vl_7b", task, layer, 28, settings.budget, settings.budget_mode, settings.retention,
        model=model, checkpoint=checkpoint,
    )  # fmt: skip


def _bind(settings: ModelSettings, **ctx):
    return bind(settings.spec, settings.method_settings, _ctx(settings, **ctx))


@pytest.mark.parametrize("budget", [50, 30])
def test_budget_reads_the_file_and_equals_the_thresholds_given_by_hand(tmp_path, budget):
    path = _write(tmp_path)
    entry = GOOD["tasks"][TASK]["targets"][str(budget)]
    from_file = _bind(ModelSettings.from_model_args(pretrained="/c", budget=budget, thresholds=path))
    by_hand = _bind(
        ModelSettings.from_model_args(pretrained="/c", tau_s=entry["tau_s"], tau_t=entry["tau_t"])
    )
    assert (from_file.prefill.tau_s, from_file.prefill.tau_t) == (entry["tau_s"], entry["tau_t"])
    assert from_file.params["tau_s"] == entry["tau_s"] and from_file.params["thresholds"] == path
    grid = (4, 6, 6)
    g = torch.Generator().manual_seed(budget)
    hidden = torch.randn(1, 6, 6, 32, generator=g) + 0.5 * torch.randn(4, 6, 6, 32, generator=g)
    a = from_file.prefill(hidden.reshape(-1, 32), grid)
    b = by_hand.prefill(hidden.reshape(-1, 32), grid)
    ref = SttmReducer(entry["tau_s"], entry["tau_t"])(hidden.reshape(-1, 32), grid)
    assert 1 < a.num_kept < 144
    assert a.num_kept == b.num_kept == ref.num_kept
    assert torch.equal(a.token_map, ref.token_map) and torch.equal(b.token_map, ref.token_map)


def test_without_the_file_budget_still_means_the_papers_thresholds():
    s = ModelSettings.from_model_args(pretrained="/c", budget=30)
    inst = bind(
        s.spec, s.method_settings, BuildContext("llava", "llava_video_7b", "videomme_sttm", 2, 28, 30)
    )
    assert (inst.prefill.tau_s, inst.prefill.tau_t) == (0.80, 0.50) and "thresholds" not in inst.params
    with pytest.raises(ValueError, match="the paper has no thresholds for qwen2_5_vl_7b"):
        _bind(s)


@pytest.mark.parametrize(
    "content, match",
    [
        ("{not json", "malformed: not a JSON file"),
        (_edited(lambda d: d.update(format="other/2")), "format is 'other/2'"),
        (_edited(lambda d: d.pop("merge_layer")), "merge_layer is missing"),
        (_edited(lambda d: d["checkpoint"].pop("config_sha256")), "checkpoint.config_sha256 is missing"),
        (_edited(lambda d: d["sttm"].pop("union_find")), "sttm must hold"),
        (_edited(lambda d: d.update(tasks={})), "tasks is missing or empty"),
        (
            _edited(lambda d: d["tasks"][TASK]["targets"]["50"].update(tau_s="0.8")),
            r"targets\.50\.tau_s is missing",
        ),
        (_edited(lambda d: d["tasks"][TASK]["targets"]["50"].pop("within_tolerance")), "within_tolerance"),
        (_edited(lambda d: d["tasks"][TASK]["targets"]["50"].update(retention=0.3)), "holds retention 0.3"),
    ],
)
def test_a_malformed_file_fails_at_start_up(tmp_path, content, match):
    path = _write(tmp_path, content)
    with pytest.raises(ThresholdsFileError, match=f"thresholds={path}: .*{match}"):
        ModelSettings.from_model_args(pretrained="/c", budget=50, thresholds=path)


def test_a_missing_file_fails_at_start_up(tmp_path):
    with pytest.raises(ThresholdsFileError, match="no such file .*python -m lmms_sttm.calibrate"):
        ModelSettings.from_model_args(pretrained="/c", budget=50, thresholds=str(tmp_path / "nope.json"))


@pytest.mark.parametrize(
    "data, settings, ctx, match",
    [
        (
            GOOD,
            {},
            {"model": "qwen2_vl_sttm"},
            "calibrated for --model qwen2_5_vl_sttm, this run is qwen2_vl_sttm",
        ),
        (GOOD, {}, {"checkpoint": "ffff"}, "'Qwen/Qwen2.5-VL-7B-Instruct', whose configuration differs"),
        (GOOD, {}, {"layer": 3}, "calibrated at merge_layer=2, this run merges at layer 3"),
        (
            GOOD,
            {"union_find": "components"},
            {},
            "union_find='authors', this run has union_find='components'",
        ),
        (GOOD, {"root_level": 2}, {}, "root_level=1, this run has root_level=2"),
        (
            GOOD,
            {},
            {"task": "vnbench_sttm"},
            r"no entry for task 'vnbench_sttm' \(calibrated tasks: \['videomme_sttm'\]",
        ),
        (
            _edited(lambda d: d["tasks"][TASK]["targets"].pop("30")),
            {"budget": 30},
            {},
            r"no entry for budget=30 on videomme_sttm \(calibrated budgets: \['50'\]\).*--retention 0.3",
        ),
        (
            _edited(lambda d: d["tasks"][TASK]["targets"]["50"].update(within_tolerance=False)),
            {},
            {},
            "the 50% calibration on videomme_sttm missed its target",
        ),
        (GOOD, {}, {"model": None, "checkpoint": None}, "does not say which model and checkpoint"),
    ],
)
def test_a_file_for_another_run_fails_naming_the_difference(tmp_path, data, settings, ctx, match):
    path = _write(tmp_path, data)
    s = ModelSettings.from_model_args(pretrained="/c", **{"budget": 50, **settings}, thresholds=path)
    with pytest.raises(ThresholdsFileError, match=match):
        _bind(s, **ctx)


def test_the_file_is_read_by_budget_only(tmp_path):
    path = _write(tmp_path)
    hand = ModelSettings.from_model_args(pretrained="/c", tau_s=0.9, tau_t=0.8, thresholds=path)
    with pytest.raises(ValueError, match="thresholds= is read by budget=50|30; .*drop thresholds="):
        _bind(hand)
    exact = ModelSettings.from_model_args(
        pretrained="/c", budget_mode="exact", retention=0.3, thresholds=path
    )
    with pytest.raises(ValueError, match="not by budget_mode=exact"):
        _bind(exact)
    with pytest.raises(ValueError, match="must be a file path"):
        ModelSettings.from_model_args(pretrained="/c", budget=50, thresholds=" ")


def test_budget_functions_of_the_context_alone_still_work():
    """The documented ``(ctx) -> values`` form of ``MethodSpec.budgets`` is unchanged."""
    spec = dataclasses.replace(registry.get("pool"), budgets={50: lambda ctx: {"keep": 0.25}})
    settings = spec.settings()
    inst = bind(spec, settings, BuildContext("llava", "llava_video_7b", TASK, 2, 28, 50))
    assert inst.prefill.keep == 0.25


def test_budget_key_is_the_percentage():
    assert budget_key(0.5) == "50" and budget_key(0.3) == "30" and budget_key(0.25) == "25"
    for bad in (0.0, 1.0, 0.333):
        with pytest.raises(ValueError, match="whole percentage"):
            budget_key(bad)
