"""What makes a ``Reduction`` a valid plan over the ``n`` tokens a stage saw, and a recorder that
checks every plan a method returns while the engine runs it."""

from __future__ import annotations

import torch

from lmms_sttm.engine.stages import is_staged
from lmms_sttm.merging.reduction import Reduction


def plan_problem(plan, n: int, channels: int) -> str | None:
    """The first way ``plan`` fails to be a plan over ``n`` tokens of ``channels`` channels, else None.

    Checked: the type; ``features [N', C]`` with ``0 < N' <= n``; ``token_map [n]`` in ``[0, N')``
    covering every kept token; ``num_patches`` = the token map's counts (sizes sum to ``n``);
    ``rep_index [N']`` distinct, each covered by its own kept token; ``position_index`` in range.
    """
    if not isinstance(plan, Reduction):
        return f"returned {type(plan).__name__}, not a Reduction"
    kept = plan.num_kept
    if plan.features.dim() != 2 or plan.features.shape[1] != channels or not 0 < kept <= n:
        return f"features {tuple(plan.features.shape)} do not fit [N' <= {n}, {channels}]"
    tm = plan.token_map
    if tm.shape != (n,) or tm.dtype != torch.long:
        return f"token_map is {tuple(tm.shape)} {tm.dtype}, expected [{n}] int64"
    if int(tm.min()) < 0 or int(tm.max()) >= kept:
        return f"token_map values outside [0, {kept})"
    counts = torch.bincount(tm.cpu(), minlength=kept)
    if bool((counts == 0).any()):
        return f"token_map leaves kept token {int(torch.nonzero(counts == 0)[0])} covering nothing (inconsistent token map)"
    if plan.num_patches.shape != (kept,) or not torch.equal(plan.num_patches.cpu().long(), counts):
        return "num_patches differ from the token map's group sizes (inconsistent token map)"
    rep = plan.rep_index.cpu()
    if rep.shape != (kept,) or int(rep.min()) < 0 or int(rep.max()) >= n or torch.unique(rep).numel() != kept:
        return "rep_index must name one distinct original token per kept token"
    if not torch.equal(tm.cpu().index_select(0, rep), torch.arange(kept)):
        return "a representative (rep_index) is not covered by its own kept token (inconsistent token map)"
    source = plan.position_index
    if source is not None and (source.shape != (kept,) or int(source.min()) < 0 or int(source.max()) >= n):
        return f"position_index must be [{kept}] indices in [0, {n})"
    return None


class PlanProblem(ValueError):
    """A stage returned an invalid plan."""


class _RecordedRun:
    def __init__(self, inner, plans: list) -> None:
        self.inner, self.plans = inner, plans

    def next_stage(self):
        return self.inner.next_stage()

    def run(self, hidden, grid, context):
        plan = self.inner.run(hidden, grid, context)
        _check(plan, hidden, self.plans)
        return plan


def carry_problem(plan, hidden: torch.Tensor) -> str | None:
    """A plan's ``carry`` must apply the arithmetic that made its features: ``carried(hidden)`` must
    equal ``features`` bit for bit (the DeepStack features follow the merge through it)."""
    if plan.carry is None:
        return None
    carried = plan.carried(hidden)
    if carried.shape != plan.features.shape or not torch.equal(
        carried.to(plan.features.dtype), plan.features
    ):
        return "carry(hidden) differs from the plan's features: side tensors would not follow the merge's arithmetic"
    return None


def _check(plan, hidden: torch.Tensor, plans: list) -> None:
    problem = plan_problem(plan, hidden.shape[0], hidden.shape[1]) or carry_problem(plan, hidden)
    if problem is not None:
        raise PlanProblem(f"stage {len(plans) + 1}: {problem}")
    plans.append(plan)


class Recorded:
    """``method`` (reducer or staged) whose every stage's plan is checked and kept in ``plans``."""

    def __init__(self, method) -> None:
        self.method, self.plans = method, []
        self.needs_attention = bool(getattr(method, "needs_attention", False))
        self.position_rule = getattr(method, "position_rule", None)
        if is_staged(method):
            self.start = self._start

    def _start(self, grid, num_layers, layer):
        return _RecordedRun(self.method.start(grid, num_layers, layer), self.plans)

    def __call__(self, hidden, grid, context=None):
        extra = {"context": context} if self.needs_attention else {}
        plan = self.method(hidden, grid, **extra)
        _check(plan, hidden, self.plans)
        return plan
