"""``method=l2keep``: in every frame, keep the ``keep`` share of video tokens with the largest L2 norm.

An example of a token-reduction method that lives in its own package and plugs into lmms_sttm
through the entry point group ``lmms_sttm.methods`` (see this folder's pyproject.toml). It runs at
the input of decoder layer k, reads only the hidden states, so it is query-agnostic: one prefilled
video prefix serves every question. ``budget=50|30`` keep 50% / 30%; ``budget_mode=exact`` searches
``keep`` per video.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lmms_sttm import api


@dataclass(frozen=True)
class Settings:
    keep: float | None = None  # model_args keep=0.4; None: set by budget=

    def __post_init__(self) -> None:
        if self.keep is not None and not 0 < self.keep <= 1:
            raise ValueError(f"model_args keep={self.keep!r} must be in (0, 1]")


def build(settings: Settings, ctx: api.BuildContext):
    keep = settings.keep

    def reduce(hidden: torch.Tensor, grid: tuple[int, int, int]) -> api.Reduction:
        """``hidden [T*H*W, C]`` -> the ``ceil(keep * H * W)`` largest-norm tokens of each frame."""
        t, h, w = grid
        norms = hidden.float().norm(dim=-1).view(t, h * w)
        k = max(1, min(h * w, math.ceil(keep * h * w)))
        top = norms.argsort(dim=1, descending=True, stable=True)[:, :k]  # ties: lower index first
        mask = torch.zeros(t, h * w, dtype=torch.bool, device=hidden.device)
        mask.scatter_(1, top, True)
        return api.from_keep_mask(hidden, mask.view(-1), grid)

    return reduce


SPEC = api.MethodSpec(
    name="l2keep",
    build=build,
    stages=(api.StageSpec("input", frozenset({"hidden", "grid"})),),
    settings=Settings,
    knobs=("keep",),
    budgets={50: {"keep": 0.5}, 30: {"keep": 0.3}},
    knob="keep",
    knob_range=(0.0, 1.0),
    reference="example method shipped with lmms_sttm (examples/l2keep)",
)
