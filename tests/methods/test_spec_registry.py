"""Method specs and the registry: declared facts, validation before any forward, discovery, settings keys."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from lmms_sttm import api
from lmms_sttm.merging.budget import KnobSearch
from lmms_sttm.methods import registry
from lmms_sttm.methods.bind import bind
from lmms_sttm.models.settings import ModelSettings
from tests.methods import broken_methods

CTX = api.BuildContext("llava", "llava_video_7b", "videomme_sttm", layer=2, num_layers=28, budget=30)


def test_query_agnostic_is_derived_from_what_the_stages_read():
    agnostic = {name: registry.get(name).query_agnostic for name in registry.BUILTIN}
    assert agnostic == {"none": True, "sttm": True, "tome": True, "dycoke_stage1": True, "dycoke": False,
                        "fastv": False, "framefusion": False, "pool": True, "evs": True, "vidcom2": True,
                        "fastvid": True, "holitom": False, "flashvid": False}  # fmt: skip
    reads = api.StageSpec("input", frozenset({"hidden", "prompt_attention"}))
    assert not dataclasses.replace(broken_methods.WORKS, stages=(reads,)).query_agnostic


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(stages=(api.StageSpec("decode", frozenset({"decode_attention"})),)), "decode= builder"),
        (dict(knobs=("nope",)), "knob 'nope' is not a field"),
        (dict(budgets={30: {"other": 1}}), "budget=30 sets"),
        (dict(position_rule={"llava": "sideways"}), "position rule 'sideways'"),
        (dict(name="a,b"), "without ','"),
    ],
)
def test_malformed_specs_fail_at_declaration(change, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(broken_methods.WORKS, **change)


def test_stage_declarations_are_checked():
    with pytest.raises(ValueError, match="cannot read the prompt's attention"):
        api.StageSpec("decode", frozenset({"prompt_attention"}))
    with pytest.raises(ValueError, match="stage reads"):
        api.StageSpec("input", frozenset({"pixels"}))
    assert api.StageSpec("attention", layer=3).split(2) == 4 and api.StageSpec("input").split(5) == 5


def test_collisions_and_impossible_positions_are_refused_before_the_forward():
    spec = broken_methods.TWO_STAGES_AT_ONE_SPLIT
    with pytest.raises(ValueError, match="two stages open a segment at layer 2"):
        bind(spec, spec.settings(), CTX)
    fastv = registry.get("fastv")
    with pytest.raises(ValueError, match="needs merge_layer >= 1"):
        bind(fastv, fastv.settings(), dataclasses.replace(CTX, layer=0))
    renumber = dataclasses.replace(broken_methods.WORKS, position_rule="renumber")
    bind(renumber, renumber.settings(), CTX)  # LLaVA: fine
    with pytest.raises(ValueError, match="M-RoPE ids cannot be renumbered"):
        bind(renumber, renumber.settings(), dataclasses.replace(CTX, family="qwen"))


def test_names_paths_and_broken_plugins():
    assert registry.names()[: len(registry.BUILTIN)] == list(registry.BUILTIN)
    assert registry.get("tests.methods.broken_methods:WORKS") is broken_methods.WORKS
    with pytest.raises(ValueError, match=r"cannot load no_such_pkg\.mod:SPEC: ModuleNotFoundError"):
        registry.get("no_such_pkg.mod:SPEC")
    with pytest.raises(ValueError, match="is a Keep, not an lmms_sttm.api.MethodSpec"):
        registry.get("tests.methods.broken_methods:Keep")
    api.register(spec := dataclasses.replace(broken_methods.WORKS, name="registered_here"))
    try:
        assert registry.get("registered_here") is spec and "registered_here" in api.names()
        with pytest.raises(ValueError, match="is a built-in"):
            api.register(dataclasses.replace(spec, name="sttm"))
    finally:
        api.unregister("registered_here")


def test_a_method_owns_its_keys():
    s = ModelSettings.from_model_args(pretrained="/c", method="tests.methods.broken_methods:WORKS", keep=0.4)
    assert s.method_settings.keep == 0.4 and s.spec.name == "first_tokens"
    assert s.as_dict()["keep"] == 0.4
    with pytest.raises(ValueError, match="tau_s= applies to method=sttm, not first_tokens"):
        ModelSettings.from_model_args(pretrained="/c", method="tests.methods.broken_methods:WORKS", tau_s=0.5)
    with pytest.raises(ValueError, match="unknown model_args \\['zzz'\\]"):
        ModelSettings.from_model_args(pretrained="/c", method="tests.methods.broken_methods:WORKS", zzz=1)
    with pytest.raises(ValueError, match="pass either budget= .* or keep=, not both"):
        ModelSettings.from_model_args(
            pretrained="/c", method="tests.methods.broken_methods:WORKS", keep=0.4, budget=30
        )


def test_params_of_a_third_party_method_are_its_settings_and_budget():
    spec = broken_methods.WORKS
    inst = bind(spec, spec.settings(), CTX)
    assert inst.params == {"keep": 0.3, "budget": 30, "budget_mode": "native", "retention": None,
                           "decode_positions": "authors"}  # fmt: skip
    exact = bind(
        spec, spec.settings(), dataclasses.replace(CTX, budget=None, budget_mode="exact", retention=0.25)
    )
    assert isinstance(exact.prefill, KnobSearch) and exact.params["tolerance"] == 0.01


@pytest.mark.parametrize("retention", [0.05, 0.3, 0.62, 1.0])
def test_knob_search_hits_the_budget_and_equals_the_knob_it_settles_on(retention):
    """The search's plan is the method's own plan at some knob value (or its trim), within one point."""
    gen = torch.Generator().manual_seed(1)
    hidden, grid = torch.randn(5 * 7 * 9, 8, generator=gen), (5, 7, 9)
    make = lambda keep: broken_methods._first_tokens(keep)  # noqa: E731
    search = KnobSearch(make, (0.0, 1.0), True, retention, 0.01)
    plan = search(hidden, grid)
    assert abs(plan.ratio - retention) <= 0.01
    k = plan.num_kept
    assert torch.equal(plan.rep_index, torch.arange(k)) and search.last.calls <= 16
    decreasing = KnobSearch(lambda drop: make(1 - drop), (0.0, 1.0), False, retention, 0.01)
    assert abs(decreasing(hidden, grid).ratio - retention) <= 0.01
