"""Choosing the next token from logits: greedy (the protocol) or seeded sampling (when asked).

A picker maps the last position's logits ``[1, V]`` to the next token ``[1, 1]`` (int64).
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def greedy(logits: torch.Tensor) -> torch.Tensor:
    """``[1, V] -> [1, 1]``: the argmax."""
    return logits.argmax(-1, keepdim=True)


def sampler(
    temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0, seed: int = 0
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A seeded sampling picker: temperature, then top-k, then nucleus (top-p) filtering.

    The same seed gives the same tokens for the same logits, so an answer does not depend on
    whether its prefix was reused or on the rank that produced it.
    """
    if not temperature > 0:
        raise ValueError(f"sampling needs temperature > 0, got {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0, got {top_k}")
    generators: dict[torch.device, torch.Generator] = {}

    def pick(logits: torch.Tensor) -> torch.Tensor:
        gen = generators.get(logits.device)
        if gen is None:
            gen = generators[logits.device] = torch.Generator(device=logits.device).manual_seed(seed)
        scores = logits.float() / temperature
        if top_k:
            kth = scores.topk(min(top_k, scores.shape[-1]), dim=-1).values[..., -1:]
            scores = scores.masked_fill(scores < kth, float("-inf"))
        if top_p < 1:
            ordered, order = scores.sort(dim=-1, descending=True)
            probs = ordered.softmax(-1)
            drop = probs.cumsum(-1) - probs > top_p  # keep the smallest prefix reaching top_p
            scores = torch.full_like(scores, float("-inf")).scatter(
                -1, order, ordered.masked_fill(drop, float("-inf"))
            )
        return torch.multinomial(scores.softmax(-1), 1, generator=gen)

    return pick
