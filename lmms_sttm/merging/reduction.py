"""The result type shared by every token-reduction method: a plan over a video's token grid.

A video of T frames with an H x W token grid has N = T*H*W original tokens, indexed in raster
order (t, y, x) -> t*H*W + y*W + x. A reduction keeps N' <= N tokens; each kept token covers a
set of original tokens. The plan is computed once and can then be applied to any tensor that
is aligned with the original tokens (features, position ids, token ids).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class Reduction:
    """A token-reduction plan and the reduced features.

    Attributes:
        features: ``[N', C]`` kept (merged) features, in the method's output dtype.
        num_patches: ``[N']`` int64, number of original tokens each kept token covers.
        tlbr: ``[N', 5]`` int64 rectangles ``(t, y0, x0, y1, x1)`` in finest-grid units
            (y1, x1 exclusive) of the kept token's representative node. For a token that also
            absorbed tokens of later frames, the rectangle is its representative's.
        token_map: ``[N]`` int64, for each original token the index of the kept token covering it.
        rep_index: ``[N']`` int64, the original token index of each kept token's representative
            (its top-left original token in its earliest frame); used to select per-token
            values such as position ids of survivors.
        grid: ``(T, H, W)`` of the original token grid.
        position_index: ``[N']`` int64 or ``None``: the original token whose position id each kept
            token takes when the model keeps survivors' own ids (e.g. the authors' ToMe keeps its
            merge destination's M-RoPE id). ``None`` means ``rep_index``.
        carry: ``values [N, C'] -> [N', C']``: the plan applied to another tensor aligned with the
            original tokens with exactly the arithmetic that made ``features`` (a merged token's
            value is computed as its hidden state was, a pruned token's is dropped). Tensors a token
            carries through a merge (Qwen3-VL's DeepStack features) go through it. ``None``: the
            method did not say (such a plan cannot run where a side tensor must follow it).

    Rows are listed in the order the kept tokens enter the LLM. For most methods that is raster
    order of the representatives (``rep_index`` strictly increasing); a method that reproduces an
    authors' other order (ToMe's similarity order) lists its rows in that order instead.
    """

    features: torch.Tensor
    num_patches: torch.Tensor
    tlbr: torch.Tensor
    token_map: torch.Tensor
    rep_index: torch.Tensor
    grid: tuple[int, int, int]
    position_index: torch.Tensor | None = None
    carry: Callable[[torch.Tensor], torch.Tensor] | None = field(default=None, compare=False, repr=False)

    @property
    def num_kept(self) -> int:
        return int(self.features.shape[0])

    @property
    def num_original(self) -> int:
        t, h, w = self.grid
        return t * h * w

    @property
    def position_source(self) -> torch.Tensor:
        """``[N']`` original token index whose position id each kept token takes."""
        return self.rep_index if self.position_index is None else self.position_index

    @property
    def ratio(self) -> float:
        """Kept tokens over original tokens."""
        return self.num_kept / self.num_original

    def carried(self, values: torch.Tensor) -> torch.Tensor:
        """``values [N, C']`` through the plan (``carry``) -> ``[N', C']``; raises if the plan has none."""
        if self.carry is None:
            raise ValueError(
                "this reduction plan has no carry function (Reduction.carry), so a tensor the tokens carry "
                "(DeepStack features) cannot follow it; build plans with lmms_sttm.api.from_groups / "
                "from_keep_mask, set carry, or reduce after the layers that add such tensors"
            )
        out = self.carry(values)
        if out.shape[0] != self.num_kept:
            raise ValueError(f"carry returned {out.shape[0]} rows for a plan keeping {self.num_kept}")
        return out

    def reorder(self, perm: torch.Tensor) -> Reduction:
        """The same plan with its rows in the order ``perm [N']`` (row ``i`` is old row ``perm[i]``)."""
        perm = perm.to(self.rep_index.device)
        inverse = torch.empty_like(perm)
        inverse[perm] = torch.arange(perm.numel(), device=perm.device)
        carry = self.carry
        return Reduction(
            features=self.features.index_select(0, perm.to(self.features.device)),
            num_patches=self.num_patches.index_select(0, perm),
            tlbr=self.tlbr.index_select(0, perm.to(self.tlbr.device)),
            token_map=inverse.index_select(0, self.token_map.to(perm.device)),
            rep_index=self.rep_index.index_select(0, perm),
            grid=self.grid,
            position_index=None if self.position_index is None else self.position_index.index_select(0, perm),
            carry=None if carry is None else (lambda v: carry(v).index_select(0, perm.to(v.device))),
        )

    def select(self, values: torch.Tensor, dim: int = 0) -> torch.Tensor:
        """Values of the representatives: ``values`` ``[..., N, ...]`` along ``dim`` -> ``[..., N', ...]``."""
        return values.index_select(dim, self.rep_index.to(values.device))

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """Unweighted mean of the original values covered by each kept token: ``[N, *] -> [N', *]``."""
        index = self.token_map.to(values.device)
        out = torch.zeros((self.num_kept, *values.shape[1:]), dtype=torch.float32, device=values.device)
        out.index_add_(0, index, values.float())
        counts = self.num_patches.to(values.device).float().view(-1, *([1] * (values.dim() - 1)))
        return (out / counts).to(values.dtype)

    @staticmethod
    def identity(x: torch.Tensor) -> Reduction:
        """The plan that keeps every token of ``x`` ``[T, H, W, C]``."""
        t, h, w, c = x.shape
        dev = x.device
        n = t * h * w
        tt, yy, xx = torch.meshgrid(
            torch.arange(t, device=dev),
            torch.arange(h, device=dev),
            torch.arange(w, device=dev),
            indexing="ij",
        )
        tlbr = torch.stack([tt, yy, xx, yy + 1, xx + 1], dim=-1).reshape(n, 5)
        idx = torch.arange(n, device=dev)
        return Reduction(
            features=x.reshape(n, c),
            num_patches=torch.ones(n, dtype=torch.long, device=dev),
            tlbr=tlbr,
            token_map=idx,
            rep_index=idx.clone(),
            grid=(t, h, w),
            carry=lambda v: v,
        )
