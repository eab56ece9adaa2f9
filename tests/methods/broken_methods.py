"""Deliberately broken methods: the conformance check must fail each, naming the rule it breaks.

Loaded by path (``method=tests.methods.broken_methods:NAME``) so that the check's worker processes
find them too.
"""

from __future__ import annotations

import dataclasses

import torch

from lmms_sttm import api


@dataclasses.dataclass(frozen=True)
class Keep:
    keep: float | None = None


def _first_tokens(keep: float):
    def reduce(hidden, grid):
        n = hidden.shape[0]
        mask = torch.zeros(n, dtype=torch.bool)
        mask[: max(1, round(keep * n))] = True
        return api.from_keep_mask(hidden, mask, grid)

    return reduce


def _spec(name: str, build, **kw) -> api.MethodSpec:
    base = dict(settings=Keep, knobs=("keep",), budgets={30: {"keep": 0.3}}, knob="keep")
    return api.MethodSpec(name=name, build=build, **{**base, **kw})


def _bad_token_map(s, ctx):
    def reduce(hidden, grid):
        plan = _first_tokens(s.keep)(hidden, grid)
        return dataclasses.replace(plan, token_map=torch.zeros_like(plan.token_map))  # all on token 0

    return reduce


def _random(s, ctx):
    def reduce(hidden, grid):
        n = hidden.shape[0]
        mask = torch.zeros(n, dtype=torch.bool)
        mask[torch.randperm(n)[: max(1, round(s.keep * n))]] = True  # unseeded: differs per call
        return api.from_keep_mask(hidden, mask, grid)

    return reduce


class _ReadsQuestion:
    needs_attention = True  # reads the last prompt token's attention, but the spec does not say so

    def __init__(self, keep: float) -> None:
        self.keep = keep

    def __call__(self, hidden, grid, context=None):
        top = context.scores.argsort(descending=True, stable=True)[
            : max(1, round(self.keep * hidden.shape[0]))
        ]
        mask = torch.zeros(hidden.shape[0], dtype=torch.bool)
        mask[top] = True
        return api.from_keep_mask(hidden, mask, grid)


def _overshoot(retention, s, ctx):
    return _first_tokens(min(1.0, retention + 0.1))  # ten points more than asked


INCONSISTENT_TOKEN_MAP = _spec("broken_token_map", _bad_token_map)
NON_DETERMINISTIC = _spec("broken_random", _random)
BUDGET_OVERSHOOT = _spec(
    "broken_overshoot", lambda s, ctx: _first_tokens(s.keep), exact=_overshoot, knob=None
)
QUESTION_READING = _spec("broken_reads_question", lambda s, ctx: _ReadsQuestion(s.keep))
TWO_STAGES_AT_ONE_SPLIT = _spec(
    "broken_two_splits",
    lambda s, ctx: _first_tokens(s.keep),
    stages=(api.StageSpec("input", layer=2), api.StageSpec("attention", layer=1)),
)
WORKS = _spec("first_tokens", lambda s, ctx: _first_tokens(s.keep))


def _top_vision(keep: float):
    """Keeps the tokens of highest vision-tower score; raises when a run gives it none."""
    from lmms_sttm.merging.vision_stage import VisionStage

    def reduce(hidden, grid, vision_scores):
        if vision_scores is None:
            raise ValueError("no vision scores reached the stage")
        if tuple(vision_scores.shape) != (grid[0], grid[1] * grid[2]):
            raise ValueError(f"vision scores of shape {tuple(vision_scores.shape)} for grid {grid}")
        n = hidden.shape[0]
        order = torch.argsort(-vision_scores.reshape(-1).float(), stable=True)
        mask = torch.zeros(n, dtype=torch.bool)
        mask[order[: max(1, round(keep * n))].to(mask.device)] = True
        return api.from_keep_mask(hidden, mask, grid)

    return VisionStage(reduce, name=f"top_vision {keep}")


#: reads the vision tower's frame-query attention (works only where every run gives it)
VISION_READER = _spec(
    "vision_reader",
    lambda s, ctx: _top_vision(s.keep),
    stages=(api.StageSpec("input", frozenset({"hidden", "grid", "vision_attention"})),),
    exact=lambda r, s, ctx: _top_vision(r),
    knob=None,
    vision_score="frame_query",
)
