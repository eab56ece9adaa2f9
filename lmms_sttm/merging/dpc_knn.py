"""Density-peak clustering with k nearest neighbours (DPC-kNN), as HoliTom and FlashVID use it.

For tokens ``x [n, C]``: distances ``d = cdist(x, x) / sqrt(C)`` (float32); each token's local
density ``rho = exp(-mean of its k smallest squared distances)`` (itself included, at distance 0);
``delta`` = the distance to the nearest token of strictly higher density (the largest distance
of the whole matrix for the densest tokens); the ``m`` tokens of highest ``rho * delta`` are the
cluster centres (equal scores: lower index first). Every other token joins its nearest centre.

Both authors add uniform noise of size 1e-6 to the densities "so that no two are equal" (an
unseeded ``torch.rand``): the centres they pick can then differ from run to run where two
densities lie within 1e-6. This implementation adds no noise and orders equal densities by index
(the lower index counts as denser; equal scores: lower index first), so it is deterministic and
gives one of the outcomes their code can reach on exact ties (mutual nearest neighbours with
``k = 2`` have equal densities); ``scripts/parity/`` measures how often the authors' own runs
disagree.
"""

from __future__ import annotations

import math

import torch


def knn_density(dist: torch.Tensor, k: int) -> torch.Tensor:
    """``dist [n, n]`` -> ``[n]`` ``exp(-mean of the k smallest squared distances)`` per row."""
    nearest = torch.topk(dist, k, dim=-1, largest=False).values
    return torch.exp(-(nearest**2).mean(dim=-1))


def dpc_scores(dist: torch.Tensor, density: torch.Tensor) -> torch.Tensor:
    """``[n]`` ``rho * delta``: ``delta`` is the distance to the nearest denser token, else the
    matrix's largest distance. Of two equal densities the lower index counts as denser (a strict
    order, as the authors' noise makes one: one of the outcomes their code can reach)."""
    n = density.shape[0]
    idx = torch.arange(n, device=density.device)
    denser = (density[None, :] > density[:, None]) | (
        (density[None, :] == density[:, None]) & (idx[None, :] < idx[:, None])
    )  # [i, j]: j denser than i
    far = dist.max()
    return torch.where(denser, dist, far).min(dim=-1).values * density


def top_index(scores: torch.Tensor, m: int) -> torch.Tensor:
    """``[m]`` indices of the ``m`` largest ``scores`` in descending order (ties: lower index first)."""
    return torch.argsort(scores, descending=True, stable=True)[:m]


def dpc_knn(x: torch.Tensor, m: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Clusters ``x [n, C]`` into ``m`` groups (``1 <= m <= n``, ``1 <= k <= n``).

    Returns ``(centres [m], dist [n, n])``: the centre indices by descending score and the
    scaled distance matrix (float32), which the callers use to assign the other tokens.
    """
    n, c = x.shape
    xf = x.float()
    dist = torch.cdist(xf, xf) / math.sqrt(c)
    density = knn_density(dist, k)
    return top_index(dpc_scores(dist, density), m), dist
