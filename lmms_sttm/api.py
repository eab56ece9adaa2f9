"""The public method interface of lmms_sttm (version ``API_VERSION``): bring your own method.

A method is one ``MethodSpec``: its name, its stages (``StageSpec``: where each runs and what it
reads), its settings class (its own ``--model_args`` keys), its budget knob and the authors'
settings for ``budget=50|30``, its position rule per model family and its default layer. The
built-ins (``sttm``, ``tome``, ``dycoke_stage1``, ``dycoke``, ``fastv``, ``framefusion``, ``pool``)
are declared with exactly this surface. A method in another package is found without a fork:

- an entry point in group ``lmms_sttm.methods`` (``name = "package.module:SPEC"``) -> ``method=name``;
- or ``method=package.module:SPEC`` in ``--model_args``;
- or ``register(SPEC)`` in the running process.

Its keys are passed as ordinary ``--model_args`` (``method=mine,keep=0.4``): a method owns the
fields of its settings class, which may not shadow the model's own keys (``accepted_keys``).

What a stage computes: a reducer ``(hidden [N, C], grid (T, H, W)) -> Reduction`` over the
``N = T*H*W`` video tokens in raster order (query-aware reducers set ``needs_attention = True`` and
take ``context: StageContext``), or a staged method (``start(grid, num_layers, layer) ->`` a run
whose ``next_stage() -> Stage | None`` and ``run(hidden, grid, context) -> Reduction``).
``Reduction`` builders: ``Reduction.identity(x [T, H, W, C])``, ``from_groups(hidden, labels, grid)``
(one token per group, the plain mean), ``from_keep_mask(hidden, keep, grid)`` (pruning). Check a method with
``python -m lmms_sttm.check_method NAME``.

Everything not named here is internal and may change between releases.
"""

from __future__ import annotations

import torch

from lmms_sttm.engine.query_aware import AttentionContext as StageContext
from lmms_sttm.merging.groups import from_groups, from_keep, previous_kept_parent
from lmms_sttm.merging.reduction import Reduction
from lmms_sttm.merging.stage import Stage
from lmms_sttm.methods.registry import GROUP, get, names, register, unregister
from lmms_sttm.methods.spec import READS, WHERE, BuildContext, MethodSpec, StageSpec, check_choice

API_VERSION = "1.0"

__all__ = [
    "API_VERSION",
    "GROUP",
    "READS",
    "WHERE",
    "BuildContext",
    "MethodSpec",
    "Reduction",
    "Stage",
    "StageContext",
    "StageSpec",
    "accepted_keys",
    "check_choice",
    "from_groups",
    "from_keep_mask",
    "get",
    "names",
    "register",
    "unregister",
]


def accepted_keys() -> list[str]:
    """The model's own ``--model_args`` keys (a method's settings fields may not use them)."""
    from lmms_sttm.models.settings import ModelSettings

    return ModelSettings.accepted_keys()


def from_keep_mask(hidden: torch.Tensor, keep: torch.Tensor, grid: tuple[int, int, int]) -> Reduction:
    """Pruning plan: ``hidden [N, C]``, ``keep [N]`` bool (at least one True) -> kept tokens keep their
    own features, in raster order; each dropped token is counted with the nearest kept token before
    it (else the first kept one)."""
    return from_keep(hidden, keep, previous_kept_parent(keep), grid)
