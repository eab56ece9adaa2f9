"""A reduction method as one declared object: its stages, settings, budget knob and positions.

A ``MethodSpec`` is all the harness needs to run a method on any supported model: the settings
parser reads its ``settings`` class (the method's own ``--model_args`` keys), the budget modes read
``budgets`` / ``knobs`` / ``exact`` / ``knob``, the engine runs what ``build`` returns at the layer
``default_layer`` (or ``merge_layer=``) with the position rule of the model family, and whether one
prefilled video prefix may serve every question is derived from the declared stages: a method is
query-agnostic when no stage reads the question (``StageSpec.reads``), never from its name.

``build(settings, ctx)`` returns the prefill part: a reducer ``(hidden [N, C], grid (T, H, W)) ->
Reduction`` (one stage at layer k; a query-aware one declares ``needs_attention = True`` and takes
``context=``) or a staged method (``start(grid, num_layers, layer) -> StageRun``, ``engine/stages.py``).
``decode(settings, ctx)`` returns a decode-time stage (DyCoke's KV pruning) or None.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: where a stage runs: on the input of decoder layer k (k = 0: the visual features as they enter
#: the LLM, i.e. the input embeddings of the video span), after layer k's attention (before its
#: MLP), or at every decode step
WHERE = ("input", "attention", "decode")
#: what a stage reads: the video tokens' hidden states, the frame grid, the frames' timestamps
#: (``StageContext.timestamps``), the composed plan of the earlier stages, the vision tower's
#: received attention per grid token (``StageContext.vision_scores [T, H*W]``: the video is then
#: encoded with the scoring hook, ``models/vision_attention.py``; given to the first stage), the last prompt
#: token's attention at the split (the prompt holds the question), the generated token's attention
#: at decode time (it follows the question)
READS = (
    "hidden",
    "grid",
    "timestamps",
    "tokens",
    "vision_attention",
    "prompt_attention",
    "decode_attention",
)
#: the kinds of vision-tower score a method may read (``models/vision_attention.KINDS``)
VISION_SCORES = ("received", "frame_query")
QUESTION_READS = frozenset({"prompt_attention", "decode_attention"})
#: model families and their position mode: 1-D RoPE positions can be reassigned, M-RoPE ids survive
FAMILIES = {"llava": "reassign", "qwen": "survive", "qwen3_vl": "survive", "internvl": "reassign"}
#: model families whose methods run as another family's: Qwen3.5 / Qwen3.6 lay a video out exactly
#: as Qwen3-VL does (one timestamped frame block per temporal patch, interleaved M-RoPE whose ids
#: survive a reduction; no DeepStack), so a method gets Qwen3-VL's position rule and per-family
#: defaults there. That their decoder is hybrid (Gated DeltaNet layers) is the engine's concern.
METHOD_FAMILY_OF = {"qwen3_5": "qwen3_vl"}


def method_family(model_family: str) -> str:
    """The method family (a key of ``FAMILIES``) of a model family (``models/families.py``)."""
    family = METHOD_FAMILY_OF.get(model_family, model_family)
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {model_family!r}; known: {[*FAMILIES, *METHOD_FAMILY_OF]}")
    return family


POSITION_RULES = ("renumber", "original")
BUDGET_MODES = ("native", "exact")


@dataclass(frozen=True)
class StageSpec:
    """One declared stage.

    Attributes:
        where: one of ``WHERE``.
        reads: subset of ``READS``.
        layer: the decoder layer (``input``/``attention``); None: the run's layer k. Staged methods
            whose layers depend on the data (FrameFusion) declare None and say so in ``note``.
        note: one line for the conformance report (e.g. "repeated after each layer until done").
    """

    where: str = "input"
    reads: frozenset[str] = frozenset({"hidden", "grid"})
    layer: int | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if self.where not in WHERE:
            raise ValueError(f"stage where={self.where!r}; use one of {list(WHERE)}")
        reads = frozenset(self.reads)
        unknown = sorted(reads - set(READS))
        if unknown:
            raise ValueError(f"stage reads {unknown}; known: {list(READS)}")
        object.__setattr__(self, "reads", reads)
        if self.layer is not None and (not isinstance(self.layer, int) or self.layer < 0):
            raise ValueError(f"stage layer must be a non-negative int or None, got {self.layer!r}")
        if "prompt_attention" in reads and self.where == "decode":
            raise ValueError(f"a {self.where} stage cannot read the prompt's attention")
        if "decode_attention" in reads and self.where != "decode":
            raise ValueError("only a decode stage reads the generated token's attention")
        if "vision_attention" in reads and self.where == "decode":
            raise ValueError(
                "a decode stage cannot read the vision tower's attention (given to the first stage)"
            )

    @property
    def reads_question(self) -> bool:
        return bool(self.reads & QUESTION_READS)

    def split(self, k: int) -> int | None:
        """The first decoder layer that sees this stage's tokens (None for a decode stage)."""
        if self.where == "decode":
            return None
        layer = k if self.layer is None else self.layer
        return layer + (self.where == "attention")


@dataclass(frozen=True)
class BuildContext:
    """What ``build`` knows of the run: model family, the paper's model key, the task, the layer
    k and the model's depth, the budget the user asked for, and which model it is: the lmms-eval
    model name (``model``) and the checkpoint's configuration fingerprint (``checkpoint``,
    ``models/identity.config_fingerprint``; what STTM's calibrated ``thresholds=FILE`` is checked
    against). The lmms-eval models set both; None elsewhere. ``vision_attention``: the run gives the
    first stage the vision tower's attention (``StageContext.vision_scores``); the lmms-eval models
    set it for a method that reads it when the video is encoded here (not from ``features=`` files);
    a method's defaults that need the scores fall back to attention-free ones without them."""

    family: str
    paper_model: str
    task: str
    layer: int
    num_layers: int
    budget: int | None = None
    budget_mode: str = "native"
    retention: float | None = None
    model: str | None = None
    checkpoint: str | None = None
    vision_attention: bool = False


@dataclass(frozen=True)
class MethodSpec:
    """A reduction method, declared once.

    Attributes:
        name: the ``method=`` value (a built-in's name, an entry point's name, or ``module:attr``).
        build: ``(settings, ctx) -> reducer | staged method`` for one task (``budget_mode=native``);
            None only for a method with no stages (``none``).
        stages: the declared stages; an empty tuple keeps every token.
        settings: a frozen dataclass whose fields are the method's own ``--model_args`` keys
            (validated in its ``__post_init__``; defaults are the authors'); None: no keys.
        knobs: the settings fields that ``budget=`` sets (None in the settings means "from budget=").
        budgets: ``{budget: {field: value} | (ctx) -> {field: value} | (ctx, settings) -> {field:
            value}}``: the authors' settings for ``budget=50`` / ``30`` where published (a function
            of two arguments also reads the method's own settings: STTM's ``thresholds=FILE``).
        exact: ``(retention, settings, ctx) -> reducer`` keeping ``retention`` of each video's tokens
            within one point (``budget_mode=exact``); when None, ``knob`` is searched instead.
        knob: a settings field whose value moves the kept share monotonically, searched per video
            by ``budget_mode=exact`` in ``knob_range`` (``knob_increases``: more kept as it grows).
        decode: ``(settings, ctx) -> decode stage`` (DyCoke's KV pruning) or None.
        position_rule: ``POSITION_RULES`` value, or ``{family: rule}``; None: the family's default
            (LLaVA renumbers, Qwen keeps M-RoPE ids). ``renumber`` on an M-RoPE family is an error.
        default_layer: k when ``merge_layer=`` is not given (None: the model's paper layer).
        params: ``(settings, ctx) -> dict`` recorded with every answer (None: the settings' fields).
        reference: one line: the method's source (paper, repository).
        vision_score: the kind of vision-tower score a stage reading ``vision_attention`` gets
            (``models/vision_attention.KINDS``: ``received``, the attention each token receives,
            mean over queries; ``frame_query``, the attention of each frame's mean query).
    """

    name: str
    build: Callable[[Any, BuildContext], Any] | None
    stages: tuple[StageSpec, ...] = (StageSpec(),)
    settings: type | None = None
    knobs: tuple[str, ...] = ()
    budgets: Mapping[int, Any] = field(default_factory=dict)
    exact: Callable[[float, Any, BuildContext], Any] | None = None
    knob: str | None = None
    knob_range: tuple[float, float] = (0.0, 1.0)
    knob_increases: bool = True
    decode: Callable[[Any, BuildContext], Any] | None = None
    position_rule: str | Mapping[str, str] | None = None
    default_layer: int | None = None
    params: Callable[[Any, BuildContext], dict] | None = None
    reference: str = ""
    vision_score: str = "received"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or "," in self.name or "=" in self.name:
            raise ValueError(f"method name must be a non-empty string without ',' or '=', got {self.name!r}")
        object.__setattr__(self, "stages", tuple(self.stages))
        for stage in self.stages:
            if not isinstance(stage, StageSpec):
                raise TypeError(f"method {self.name}: stages must be StageSpec, got {stage!r}")
        if self.vision_score not in VISION_SCORES:
            raise ValueError(
                f"method {self.name}: vision_score {self.vision_score!r} not in {list(VISION_SCORES)}"
            )
        if self.stages and self.build is None:
            raise ValueError(f"method {self.name}: declares stages but has no build function")
        decode = [s for s in self.stages if s.where == "decode"]
        if len(decode) > 1 or bool(decode) != (self.decode is not None):
            raise ValueError(f"method {self.name}: one decode stage declared needs one decode= builder")
        names = self.setting_names()
        for key in (*self.knobs, *([self.knob] if self.knob else [])):
            if key not in names:
                raise ValueError(f"method {self.name}: knob {key!r} is not a field of its settings {names}")
        for budget, values in self.budgets.items():
            if not isinstance(budget, int) or not 0 < budget <= 100:
                raise ValueError(f"method {self.name}: budget keys are percentages, got {budget!r}")
            if isinstance(values, Mapping) and set(values) != set(self.knobs):
                raise ValueError(
                    f"method {self.name}: budget={budget} sets {sorted(values)}, knobs are {self.knobs}"
                )
        if self.budgets and not self.knobs:
            raise ValueError(f"method {self.name}: budgets need knobs (the settings fields they set)")
        lo, hi = self.knob_range
        if not lo < hi:
            raise ValueError(f"method {self.name}: knob_range {self.knob_range} must be increasing")
        for rule in self.position_rules().values():
            if rule is not None and rule not in POSITION_RULES:
                raise ValueError(f"method {self.name}: position rule {rule!r} not in {list(POSITION_RULES)}")
        if self.default_layer is not None and (
            not isinstance(self.default_layer, int) or self.default_layer < 0
        ):
            raise ValueError(f"method {self.name}: default_layer must be a non-negative int")

    # ---------------------------------------------------------------- derived facts
    @property
    def query_agnostic(self) -> bool:
        """No stage reads the question: one prefilled video prefix can serve every question."""
        return not any(s.reads_question for s in self.stages)

    @property
    def reads_vision_attention(self) -> bool:
        """Some stage reads the vision tower's attention: the model encodes the video with the
        scoring hook (its time counts as vision time); other methods pay nothing."""
        return any("vision_attention" in s.reads for s in self.stages)

    @property
    def reduces(self) -> bool:
        """Some stage runs in prefill (reduces the video's tokens)."""
        return any(s.where != "decode" for s in self.stages)

    @property
    def keeps_every_token(self) -> bool:
        """No stage at all (``none``): no budget applies."""
        return not self.stages

    def setting_names(self) -> tuple[str, ...]:
        if self.settings is None:
            return ()
        return tuple(f.name for f in dataclasses.fields(self.settings))

    def position_rules(self) -> dict[str, str | None]:
        rule = self.position_rule
        if isinstance(rule, Mapping):
            unknown = sorted(set(rule) - set(FAMILIES))
            if unknown:
                raise ValueError(f"method {self.name}: position rules for unknown families {unknown}")
            return {f: rule.get(f) for f in FAMILIES}
        return {f: rule for f in FAMILIES}

    def position_rule_for(self, family: str) -> str | None:
        """The rule on ``family``; renumbering an M-RoPE family is an error."""
        if family not in FAMILIES:
            raise ValueError(f"unknown model family {family!r}; known: {list(FAMILIES)}")
        rule = self.position_rules().get(family)
        if rule == "renumber" and FAMILIES[family] == "survive":
            raise ValueError(
                f"method {self.name} asks for renumbered positions on {family}, whose M-RoPE ids cannot be "
                "renumbered; declare position_rule={'qwen': 'original'} (or None)"
            )
        return rule

    def check_splits(self, k: int) -> None:
        """Raises ``ValueError`` when two declared stages open a segment at the same layer, or a
        stage reading the prompt's attention has no layer before its split to read it from."""
        seen: dict[int, StageSpec] = {}
        for stage in self.stages:
            split = stage.split(k)
            if split is None:
                continue
            if "prompt_attention" in stage.reads and split < 1:
                raise ValueError(
                    f"method {self.name}: its {stage.where} stage reads the attention of the layer before it, "
                    f"so it needs merge_layer >= 1 (got {k})"
                )
            if split in seen:
                raise ValueError(
                    f"method {self.name}: two stages open a segment at layer {split} "
                    f"({seen[split].where} and {stage.where}); one split per layer"
                )
            seen[split] = stage


def check_choice(name: str, value, accepted) -> None:
    """Raises ``ValueError`` naming the model argument and the accepted values."""
    if value not in accepted:
        raise ValueError(f"model_args {name}={value!r} is not accepted; use one of {list(accepted)}")
