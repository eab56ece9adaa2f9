"""Where one stage of a staged reduction method runs (``engine/stages.py`` runs the stages).

Pure data, so that methods in ``merging/`` can describe their stages without importing the engine.
"""

from __future__ import annotations

from dataclasses import dataclass

#: ``renumber``: the reduced sequence is numbered ``0..N'-1`` (1-D RoPE only); ``original``: every
#: kept token keeps the position id of ``Reduction.position_source``, text keeps its own.
POSITION_RULES = ("renumber", "original")
POINTS = ("input", "attention")


@dataclass(frozen=True)
class Stage:
    """Where the next stage runs.

    Attributes:
        layer: the decoder layer.
        point: ``"input"`` (the hidden states entering ``layer``) or ``"attention"`` (after
            ``layer``'s attention and residual, before its MLP: the MLP then runs on the reduced
            tokens; ``layer``'s KV cache holds the tokens before the stage).
        needs_attention: the stage reads the last prompt token's attention at layer ``split - 1``
            (``layer - 1`` for an input stage, ``layer`` itself for an attention stage).
        position_rule: ``POSITION_RULES`` or None (the model family's default).
    """

    layer: int
    needs_attention: bool = False
    position_rule: str | None = None
    point: str = "input"

    def __post_init__(self) -> None:
        if self.position_rule is not None and self.position_rule not in POSITION_RULES:
            raise ValueError(f"position_rule {self.position_rule!r} not in {list(POSITION_RULES)}")
        if self.point not in POINTS:
            raise ValueError(f"stage point {self.point!r} not in {list(POINTS)}")
        if self.needs_attention and self.split < 1:
            raise ValueError(f"a stage reading layer k-1's attention needs k >= 1, got {self.layer}")

    @property
    def split(self) -> int:
        """The first layer that sees the reduced tokens (where the stage's segment starts)."""
        return self.layer + (self.point == "attention")
