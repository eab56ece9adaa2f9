"""Cosine similarities of selected row pairs, without dense all-pairs products or gathered rows."""

from __future__ import annotations

import warnings

import torch

from lmms_sttm.merging.threads import heavy_threads

EPS = 1e-8
"""Norm floor of the cosine similarity, as in ``torch.nn.functional.cosine_similarity``."""


def pair_dots(a: torch.Tensor, ia: torch.Tensor, b: torch.Tensor, ib: torch.Tensor) -> torch.Tensor:
    """``[L]`` dot products ``a[ia[k]] . b[ib[k]]`` of rows of ``a [Na, C]`` and ``b [Nb, C]``.

    The pairs must be sorted by ``ia`` (then by ``ib``). Only those pairs are
    computed (sampled dense-dense matmul over a CSR pattern), without gathering rows. Devices other
    than CPU/CUDA and dtypes other than float32/float64 fall back to gathering rows.
    """
    if ia.numel() == 0:
        return torch.zeros(0, dtype=a.dtype, device=a.device)
    if a.device.type not in ("cpu", "cuda") or a.dtype not in (torch.float32, torch.float64):
        with heavy_threads():
            return (a.index_select(0, ia) * b.index_select(0, ib)).sum(-1)
    crow = torch.zeros(a.shape[0] + 1, dtype=torch.int64, device=a.device)
    crow[1:] = torch.cumsum(torch.bincount(ia, minlength=a.shape[0]), 0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse CSR tensor support is in beta.*")
        pattern = torch.sparse_csr_tensor(
            crow,
            ib,
            torch.zeros(ib.shape[0], dtype=a.dtype, device=a.device),
            size=(a.shape[0], b.shape[0]),
            check_invariants=False,
        )
        with heavy_threads():  # in place: no copy of the pattern's values
            return torch.sparse.sampled_addmm(pattern, a, b.t(), beta=0.0, out=pattern).values()


def pair_cosine(
    a: torch.Tensor, na: torch.Tensor, ia: torch.Tensor, b: torch.Tensor, nb: torch.Tensor, ib: torch.Tensor
) -> torch.Tensor:
    """``[L]`` cosine similarities of row pairs (sorted as for ``pair_dots``), given row norms; in [-1, 1]."""
    dots = pair_dots(a, ia, b, ib)
    den = na.index_select(0, ia).clamp_min(EPS) * nb.index_select(0, ib).clamp_min(EPS)
    return (dots / den).clamp(-1.0, 1.0)
