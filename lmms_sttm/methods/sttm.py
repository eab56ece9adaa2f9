"""``method=sttm``: quadtree merge of each frame, then union-find merge across frames, at layer k.

STTM (Hyun et al., ICCV 2025, arXiv 2507.07990; HYUNJS/STTM): ``merging/sttm.py``. Its own
``--model_args``: ``tau_s``, ``tau_t`` (or ``budget=50|30``: the authors' thresholds for the model
and the task's benchmark, or with ``thresholds=FILE`` those of a calibration file written by
``python -m lmms_sttm.calibrate``: ``methods/sttm_calibrated.py``), ``root_level``, and the fidelity
options ``union_find`` (``authors`` or ``components``) and ``merge_dtype`` (``input`` or ``float32``).
Exact budgets search the thresholds per video (``merging/budget.sttm_exact``). Query-agnostic: one
prefilled prefix serves every question.
"""

from __future__ import annotations

from dataclasses import dataclass

from lmms_sttm.merging.budget import DEFAULT_DIRECTION, SttmExactReducer
from lmms_sttm.merging.sttm import SttmReducer
from lmms_sttm.merging.temporal import UNION_FIND
from lmms_sttm.methods import sttm_calibrated
from lmms_sttm.methods.bind import EXACT_TOL
from lmms_sttm.methods.spec import BuildContext, MethodSpec, StageSpec, check_choice
from lmms_sttm.methods.sttm_thresholds import paper_thresholds

MERGE_DTYPES = ("input", "float32")


@dataclass(frozen=True)
class SttmSettings:
    """STTM's ``--model_args`` (defaults: the authors' computation)."""

    tau_s: float | None = None
    tau_t: float | None = None
    root_level: int = 1
    union_find: str = "authors"
    merge_dtype: str = "input"
    #: a calibration file (``python -m lmms_sttm.calibrate``) that ``budget=50|30`` reads
    thresholds: str | None = None

    def __post_init__(self) -> None:
        check_choice("union_find", self.union_find, UNION_FIND)
        check_choice("merge_dtype", self.merge_dtype, MERGE_DTYPES)
        v = self.root_level
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ValueError(f"model_args root_level={v!r} must be a non-negative integer")
        for name in ("tau_s", "tau_t"):
            t = getattr(self, name)
            if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float))):
                raise ValueError(f"model_args {name}={t!r} must be a number")
        if self.thresholds is not None:
            if not isinstance(self.thresholds, str) or not self.thresholds.strip():
                raise ValueError(f"model_args thresholds={self.thresholds!r} must be a file path")
            sttm_calibrated.load(self.thresholds)  # missing or malformed: fail at start-up

    def merge_options(self) -> dict:
        return {"union_find": self.union_find, "merge_dtype": self.merge_dtype}


def _paper(budget: int):
    """``budget=``'s thresholds: the calibration file's (``thresholds=FILE``), else the paper's."""

    def values(ctx: BuildContext, s: SttmSettings) -> dict:
        if s.thresholds is not None:
            options = {"root_level": s.root_level, **s.merge_options()}
            tau_s, tau_t = sttm_calibrated.lookup(
                s.thresholds,
                budget,
                model=ctx.model,
                checkpoint=ctx.checkpoint,
                layer=ctx.layer,
                task=ctx.task,
                options=options,
            )
        else:
            tau_s, tau_t = paper_thresholds(ctx.paper_model, budget, ctx.task)
        return {"tau_s": tau_s, "tau_t": tau_t}

    return values


def _build(s: SttmSettings, ctx: BuildContext) -> SttmReducer:
    if s.thresholds is not None and ctx.budget is None:
        raise ValueError(
            "model_args thresholds= is read by budget=50|30; with tau_s and tau_t given by hand, drop thresholds="
        )
    return SttmReducer(s.tau_s, s.tau_t, root_level=s.root_level, **s.merge_options())


def _exact(retention: float, s: SttmSettings, ctx: BuildContext) -> SttmExactReducer:
    if s.thresholds is not None:
        raise ValueError(
            "model_args thresholds= is read by budget=50|30, not by budget_mode=exact (which searches the "
            "thresholds per video): drop one of them"
        )
    return SttmExactReducer(retention, EXACT_TOL, root_level=s.root_level, merge_options=s.merge_options())


def _params(s: SttmSettings, ctx: BuildContext) -> dict:
    mode = {"budget_mode": ctx.budget_mode, "retention": ctx.retention}
    if ctx.budget_mode == "exact":
        return {**mode, "tolerance": EXACT_TOL, "root_level": s.root_level, "direction": list(DEFAULT_DIRECTION),
                **s.merge_options()}  # fmt: skip
    own = {"thresholds": s.thresholds} if s.thresholds is not None else {}
    return {
        "tau_s": s.tau_s,
        "tau_t": s.tau_t,
        "root_level": s.root_level,
        **s.merge_options(),
        **own,
        **mode,
    }


SPEC = MethodSpec(
    name="sttm",
    build=_build,
    stages=(StageSpec("input", frozenset({"hidden", "grid"})),),
    settings=SttmSettings,
    knobs=("tau_s", "tau_t"),
    budgets={50: _paper(50), 30: _paper(30)},
    exact=_exact,
    params=_params,
    reference="Hyun et al., ICCV 2025 (arXiv 2507.07990), github.com/HYUNJS/STTM",
)
