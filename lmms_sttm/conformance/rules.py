"""The conformance rules a method must pass on the tiny model of every supported family.

Each rule returns None (passed) or a message naming what broke. The model is built with eager
attention so that the by-hand reference can read attention weights; the engine computes its own
scores from the layer's projections, so the two runs stay independent. A method whose stage reads
``vision_attention`` gets the scores of the tiny model's own vision tower (the kind it declares,
``conformance/vision.py``) in every run, the by-hand one included.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from lmms_sttm.conformance.by_hand import prompt_logits_by_hand
from lmms_sttm.conformance.plans import Recorded
from lmms_sttm.conformance.tiny import HYBRID, build_model, make_inputs, text_tokens
from lmms_sttm.conformance.vision import WithVisionScores, tower_scores
from lmms_sttm.engine import apply_reduction, session
from lmms_sttm.methods.bind import EXACT_TOL, bind
from lmms_sttm.methods.spec import BuildContext, MethodSpec

#: engine family of each tiny model, and the paper's model key its thresholds come from
#: (the paper tuned no thresholds for Qwen3-VL / InternVL3.5 / Qwen3.5: their checks borrow Qwen2-VL's /
#: LLaVA-OV's; Qwen3.5 takes Qwen3-VL's method family: the same frame blocks and M-RoPE)
FAMILY = {"llava_onevision": ("llava", "llava_onevision_7b"), "qwen2_vl": ("qwen", "qwen2_vl_7b"),
          "qwen2_5_vl": ("qwen", "qwen2_vl_7b"), "qwen3_vl": ("qwen3_vl", "qwen2_vl_7b"),
          "qwen3_vl_moe": ("qwen3_vl", "qwen2_vl_7b"), "internvl": ("internvl", "llava_onevision_7b"),
          "qwen3_5": ("qwen3_vl", "qwen2_vl_7b"), "qwen3_5_moe": ("qwen3_vl", "qwen2_vl_7b")}  # fmt: skip
TASK = "videomme_sttm"
TOL = 1e-5
#: decoder layers of the check's tiny models (FrameFusion's cost budget needs more than 4); the hybrids
#: take 16 (full attention at 3, 7, 11, 15) so that HoliTom's and FlashVID's default layers (18 and 20
#: of 28, scaled) find a full-attention layer to read with a layer after it, as on the real depths
LAYERS = 8
HYBRID_LAYERS = 16


@dataclass
class Case:
    """One tiny model with an engine at the method's layer, and its video prompt; ``vision_kind``:
    the kind of vision-tower score the method reads (None: it reads none)."""

    family: str
    model: torch.nn.Module
    engine: object
    video: object
    layer: int
    vision_kind: str | None = None
    _scores: tuple | None = None

    def vision_scores(self) -> torch.Tensor | None:
        """The tiny tower's scores ``[T, H*W]`` of the current video (``conformance/vision.py``), or None."""
        if self.vision_kind is None:
            return None
        if self._scores is None or self._scores[0] is not self.video:
            scores = tower_scores(self.model, self.family, self.video.inputs, self.vision_kind)
            self._scores = (self.video, scores)
        return self._scores[1]

    def context(self, spec: MethodSpec, **budget) -> BuildContext:
        family, paper = FAMILY[self.family]
        num_layers = len(self.engine.text_model.layers)
        scores = self.vision_scores() is not None
        return BuildContext(family, paper, TASK, self.layer, num_layers, vision_attention=scores, **budget)


def make_case(family: str, spec: MethodSpec) -> Case:
    layers = HYBRID_LAYERS if family in HYBRID else LAYERS
    model = build_model(family, attn="eager", seed=0, large=True, layers=layers)
    layer = spec.default_layer if spec.default_layer is not None else 2
    engine = apply_reduction(model, layer=layer)
    kind = spec.vision_score if spec.reads_vision_attention else None
    return Case(family, model, engine, make_inputs(family, seed=0, large=True), layer, kind)


def native_budget(spec: MethodSpec) -> dict:
    """The budget the rules run a method at: ``budget=30`` when published, else exact 30%."""
    if 30 in spec.budgets:
        return {"budget": 30}
    return {"budget_mode": "exact", "retention": 0.3}


def instance(spec: MethodSpec, settings, case: Case, **budget):
    return bind(spec, settings, case.context(spec, **budget))


def whole_prompt(case: Case, method, question: torch.Tensor):
    """Engine run of ``[prompt + question]`` prefilled whole: ``(prefix, plans of every stage)``;
    ``method`` None keeps every token."""
    asked = case.video.extended(question)
    if method is None:
        return session.prefill(case.engine, asked.inputs, whole_prompt=True), []
    recorded = Recorded(method)
    scores = case.vision_scores()
    prefix = session.prefill(
        case.engine, asked.inputs, recorded, case.video.grid, whole_prompt=True, vision_scores=scores
    )
    return prefix, recorded.plans


def fingerprint(plans) -> dict:
    """Exact identity of a run's plans: every stage's token map and features, and the kept counts."""
    digest = hashlib.sha256()
    for plan in plans:
        digest.update(plan.token_map.cpu().numpy().tobytes())
        digest.update(plan.features.detach().float().cpu().numpy().tobytes())
    return {"plans": digest.hexdigest(), "kept": [p.num_kept for p in plans]}


# ----------------------------------------------------------------------------- rules
def rule_plans_valid(spec, settings, case) -> str | None:
    """Every stage returns a valid plan over the tokens it saw (token map, representatives, sizes);
    a decode stage runs three decode steps."""
    inst = instance(spec, settings, case, **native_budget(spec))
    prefix, plans = whole_prompt(case, inst.prefill, text_tokens(5, seed=3))
    if not plans and spec.reduces:
        return "the method declares stages but none ran"
    if inst.decode is not None:
        session.answer(case.engine, prefix, text_tokens(0, seed=3), max_new_tokens=3, kv_pruning=inst.decode)
    return None


def rule_by_hand(spec, settings, case) -> str | None:
    """First-token logits equal the unpatched model run by hand with the family's expected positions."""
    inst = instance(spec, settings, case, **native_budget(spec))
    question = text_tokens(5, seed=3)
    prefix, _ = whole_prompt(case, inst.prefill, question)
    again = instance(spec, settings, case, **native_budget(spec))
    if again.prefill is None:  # keeps every token: the stock model's own logits
        with torch.no_grad():
            expected = case.model(**case.video.extended(question).inputs).logits[:, -1]
        diff = float((prefix.last_logits - expected).abs().max())
        return None if diff <= TOL else f"logits differ from the stock model by {diff:.2e} (> {TOL})"
    scores = case.vision_scores()
    method = again.prefill if scores is None else WithVisionScores(again.prefill, scores)
    expected = prompt_logits_by_hand(
        case.model,
        case.video.extended(question).inputs,
        case.video.grid,
        method,
        case.layer,
        case.video.span_start,
    )[:, -1]
    diff = float((prefix.last_logits - expected).abs().max())
    return None if diff <= TOL else f"logits differ from the by-hand run by {diff:.2e} (> {TOL})"


def rule_deterministic(spec, settings, case) -> str | None:
    """Two runs on the same input give the same plans and logits."""
    question = text_tokens(5, seed=3)
    runs = []
    for _ in range(2):
        inst = instance(spec, settings, case, **native_budget(spec))
        prefix, plans = whole_prompt(case, inst.prefill, question)
        runs.append((fingerprint(plans), prefix.last_logits))
    if runs[0][0] != runs[1][0]:
        return f"two runs on the same input gave different plans (kept {runs[0][0]['kept']} vs {runs[1][0]['kept']})"
    diff = float((runs[0][1] - runs[1][1]).abs().max())
    return None if diff <= TOL else f"two runs on the same input gave logits {diff:.2e} apart"


def rule_exact_budget(spec, settings, case) -> str | None:
    """``budget_mode=exact`` keeps 30% and 50% of the video's tokens within one point."""
    if not spec.reduces:
        return None  # keeps every token: no budget to hold
    if spec.exact is None and spec.knob is None:
        return "declares no exact-budget knob (exact= or knob=)"
    n = case.video.grid[0] * case.video.grid[1] * case.video.grid[2]
    for retention in (0.3, 0.5):
        inst = instance(spec, settings, case, budget_mode="exact", retention=retention)
        try:
            prefix, _ = whole_prompt(case, inst.prefill, text_tokens(5, seed=3))
        except ValueError as e:
            return f"retention {retention}: {e}"
        kept = prefix.visual_tokens_kept
        if abs(kept / n - retention) > EXACT_TOL + 1e-12:
            return f"retention {retention}: kept {kept}/{n} = {kept / n:.3f}, outside +-{EXACT_TOL}"
    return None


def rule_query_agnostic(spec, settings, case) -> str | None:
    """A query-agnostic method (no stage reads the question): another question gives the same plan,
    and answering from a reused prefix equals a fresh prefill (questions of 1 and 23 tokens)."""
    if not spec.query_agnostic:
        return None
    inst = instance(spec, settings, case, **native_budget(spec))
    try:
        grid = case.video.grid if inst.prefill is not None else None
        scores = case.vision_scores() if inst.prefill is not None else None
        prefix = session.prefill(case.engine, case.video.inputs, inst.prefill, grid, vision_scores=scores)
    except ValueError as e:
        return f"declared query-agnostic, but its prefix prefill was refused: {e}"
    plans = []
    for seed in (3, 4):
        inst = instance(spec, settings, case, **native_budget(spec))
        _, recorded = whole_prompt(case, inst.prefill, text_tokens(5, seed=seed))
        plans.append([p.token_map for p in recorded])
    if len(plans[0]) != len(plans[1]) or not all(torch.equal(a, b) for a, b in zip(*plans, strict=True)):
        return "declared query-agnostic, but another question gave another plan"
    for length in (1, 23):
        question = text_tokens(length, seed=5)
        reused = session.answer(case.engine, prefix, question, max_new_tokens=1).first_logits
        fresh_inst = instance(spec, settings, case, **native_budget(spec))
        fresh, _ = whole_prompt(case, fresh_inst.prefill, question)
        diff = float((reused - fresh.last_logits).abs().max())
        if diff > TOL:
            return f"prefix reuse differs from a fresh prefill by {diff:.2e} for a {length}-token question"
    return None


RULES = {
    "plans_valid": rule_plans_valid,
    "deterministic": rule_deterministic,
    "exact_budget": rule_exact_budget,
    "query_agnostic": rule_query_agnostic,
    "by_hand_positions": rule_by_hand,
}
