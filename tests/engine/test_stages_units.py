"""``engine/stages.py`` without a model: the one-stage wrapper passes its reducer exactly the hidden
states, grid and (query-aware only) context it is given and runs once; ``start_run`` passes a
staged method its grid as a tuple, the layer count and the default layer; ``position_rule_of``
names the method in its error; ``compose`` on a hand-worked two-stage plan (non-raster rows, own
position sources)."""

from __future__ import annotations

import pytest
import torch

from lmms_sttm.engine.query_aware import AttentionContext
from lmms_sttm.engine.stages import OneStage, Stage, compose, is_staged, position_rule_of, start_run
from lmms_sttm.merging.reduction import Reduction


class Recorder:
    """A reducer that records its calls (``needs_attention``/``position_rule`` set per instance)."""

    def __init__(self, needs_attention=False, position_rule=None):
        self.needs_attention, self.position_rule = needs_attention, position_rule
        self.calls = []
        self.result = object()

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        return self.result

    def __repr__(self):
        return "Recorder()"


class Staged:
    def __init__(self):
        self.calls = []

    def start(self, grid, num_layers, layer):
        self.calls.append((grid, num_layers, layer))
        return "run"


def test_one_stage_of_a_query_aware_reducer():
    reducer = Recorder(needs_attention=True, position_rule="original")
    run = OneStage(reducer, 2)
    assert run.reducer is reducer
    assert run.next_stage() == Stage(2, needs_attention=True, position_rule="original", point="input")
    hidden, grid = torch.zeros(4, 3), (1, 2, 2)
    context = AttentionContext(scores=torch.ones(4), layer=2, num_layers=4)
    assert run.run(hidden, grid, context) is reducer.result
    ((args, kwargs),) = reducer.calls
    assert len(args) == 2 and args[0] is hidden and args[1] is grid
    assert kwargs.keys() == {"context"} and kwargs["context"] is context
    assert run.next_stage() is None  # one stage only


def test_one_stage_of_a_plain_reducer_gets_no_context():
    reducer = Recorder()
    run = OneStage(reducer, 5)
    assert run.next_stage() == Stage(5, needs_attention=False, position_rule=None)
    hidden, grid = torch.zeros(4, 3), (1, 2, 2)
    assert run.run(hidden, grid, AttentionContext(scores=None, layer=5, num_layers=8)) is reducer.result
    ((args, kwargs),) = reducer.calls
    assert len(args) == 2 and args[0] is hidden and args[1] is grid and kwargs == {}
    assert run.next_stage() is None


def test_start_run_passes_a_staged_method_its_arguments():
    method = Staged()
    assert is_staged(method)
    assert start_run(method, [2, 3, 4], 28, 7) == "run"
    assert method.calls == [((2, 3, 4), 28, 7)]
    assert isinstance(method.calls[0][0], tuple)
    reducer = Recorder(position_rule="renumber")
    run = start_run(reducer, (2, 3, 4), 28, 7)
    assert isinstance(run, OneStage) and run.reducer is reducer
    assert run.next_stage() == Stage(7, position_rule="renumber")


def test_is_staged_needs_a_callable_start():
    class NotCallable:
        start = 3

    assert not is_staged(NotCallable()) and not is_staged(Recorder())


def test_position_rule_of():
    assert position_rule_of(Recorder()) is None
    assert position_rule_of(Recorder(position_rule="original")) == "original"
    assert position_rule_of(object()) is None
    message = r"^Recorder\(\): position_rule 'shifted' not in \['renumber', 'original'\]$"
    with pytest.raises(ValueError, match=message):
        position_rule_of(Recorder(position_rule="shifted"))


def _plan(features, token_map, rep_index, tlbr, grid, position_index=None):
    token_map = torch.tensor(token_map)
    return Reduction(
        features=features,
        num_patches=torch.bincount(token_map),
        tlbr=torch.tensor(tlbr),
        token_map=token_map,
        rep_index=torch.tensor(rep_index),
        grid=grid,
        position_index=None if position_index is None else torch.tensor(position_index),
    )


def _first(position_index):
    # 6 originals (1, 1, 6) -> 3 kept tokens: {0, 1}, {2, 3}, {4, 5}
    tlbr = [[0, 0, 0, 1, 2], [0, 0, 2, 1, 4], [0, 0, 4, 1, 6]]
    return _plan(torch.randn(3, 2), [0, 0, 1, 1, 2, 2], [0, 2, 4], tlbr, (1, 1, 6), position_index)


def test_compose_by_hand():
    first = _first([1, 2, 5])
    # over first's 3 tokens -> 2: row 0 = first's {0, 2} (represented by first's 2), row 1 = {1}
    plan = _plan(torch.randn(2, 2), [0, 1, 0], [2, 1], [[9] * 5, [8] * 5], (1, 1, 3), [0, 1])
    total = compose(first, plan)
    assert total.features is plan.features
    assert total.token_map.tolist() == [0, 0, 1, 1, 0, 0]
    assert total.num_patches.tolist() == [4, 2]
    assert total.tlbr.tolist() == [[0, 0, 4, 1, 6], [0, 0, 2, 1, 4]]
    assert total.rep_index.tolist() == [4, 2]
    assert total.position_index.tolist() == [1, 2]  # first's own position sources 0 -> 1, 1 -> 2
    assert total.grid == (1, 1, 6)


def test_compose_without_position_sources_uses_the_representatives():
    first = _first(None)
    plan = _plan(torch.randn(2, 2), [1, 0, 1], [1, 0], [[9] * 5, [8] * 5], (1, 1, 3))
    total = compose(first, plan)
    assert total.token_map.tolist() == [1, 1, 0, 0, 1, 1]
    assert total.num_patches.tolist() == [2, 4]
    assert total.rep_index.tolist() == [2, 0]
    assert total.position_index.tolist() == [2, 0]
    assert total.tlbr.tolist() == [[0, 0, 2, 1, 4], [0, 0, 0, 1, 2]]
    assert compose(None, plan) is plan
