"""A pure-torch stand-in for flash-attn 2 (tests only): its signatures, bottom-right causal alignment.

flash-attn cannot be installed on CPU machines, but transformers 5.23 loads its flash functions
lazily into module globals of ``transformers.modeling_flash_attention_utils`` (``_flash_fn``,
``_flash_varlen_fn``, ``_pad_fn``, ``_unpad_fn``, ``_process_flash_kwargs_fn``), so the stand-in is
patched in there and a text config switched to ``flash_attention_2`` runs transformers' real flash
code path around it. Tensors: ``q [B, Sq, Hq, D]``, ``k``/``v`` ``[B, Sk, Hkv, D]`` (``Hq`` a
multiple of ``Hkv``); varlen: ``[total, H, D]`` with ``cu_seqlens`` ``[n + 1]`` int32.
Causal masks are aligned bottom-right as in flash-attn >= 2.1: query ``i`` of ``Sq`` sees keys
``j <= i + Sk - Sq``.
"""

from __future__ import annotations

import math

import torch


def _attend(q, k, v, softmax_scale, causal, window_size=(-1, -1), softcap=0.0):
    """One sequence: ``q [Sq, Hq, D]``, ``k``/``v`` ``[Sk, Hkv, D]`` -> ``[Sq, Hq, D]``."""
    sq, hq, d = q.shape
    sk, hkv = k.shape[0], k.shape[1]
    scale = softmax_scale if softmax_scale is not None else 1.0 / math.sqrt(d)
    k = k.repeat_interleave(hq // hkv, dim=1)
    v = v.repeat_interleave(hq // hkv, dim=1)
    scores = torch.einsum("qhd,khd->hqk", q, k) * scale
    if softcap:
        scores = softcap * torch.tanh(scores / softcap)
    i = torch.arange(sq, device=q.device)[:, None] + (sk - sq)  # bottom-right: query i is key i + Sk - Sq
    j = torch.arange(sk, device=q.device)[None, :]
    allowed = torch.ones(sq, sk, dtype=torch.bool, device=q.device)
    if causal:
        allowed &= j <= i
    left, right = window_size
    if left >= 0:
        allowed &= j >= i - left
    if right >= 0:
        allowed &= j <= i + right
    scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.einsum("hqk,khd->qhd", torch.softmax(scores, dim=-1), v)


def flash_attn_func(
    q,
    k,
    v,
    dropout_p=0.0,
    softmax_scale=None,
    causal=False,
    window_size=(-1, -1),
    softcap=0.0,
    alibi_slopes=None,
    deterministic=False,
    return_attn_probs=False,
):
    """flash-attn 2's ``flash_attn_func``: ``[B, Sq, Hq, D]`` -> ``[B, Sq, Hq, D]``."""
    if dropout_p or alibi_slopes is not None or return_attn_probs:
        raise NotImplementedError(
            "flash stand-in: dropout, alibi and attention probabilities are not modelled"
        )
    CALLS["flash"] += 1
    return torch.stack(
        [_attend(q[b], k[b], v[b], softmax_scale, causal, window_size, softcap) for b in range(q.shape[0])]
    )


def flash_attn_varlen_func(
    q,
    k,
    v,
    cu_seqlens_q,
    cu_seqlens_k,
    max_seqlen_q,
    max_seqlen_k,
    dropout_p=0.0,
    softmax_scale=None,
    causal=False,
    window_size=(-1, -1),
    softcap=0.0,
    alibi_slopes=None,
    deterministic=False,
    return_attn_probs=False,
    block_table=None,
):
    """flash-attn 2's packed-sequence ``flash_attn_varlen_func``: ``[total_q, Hq, D]`` -> same."""
    if dropout_p or alibi_slopes is not None or return_attn_probs or block_table is not None:
        raise NotImplementedError("flash stand-in: dropout, alibi, probabilities and paging are not modelled")
    CALLS["varlen"] += 1
    out = []
    for n in range(len(cu_seqlens_q) - 1):
        qs = slice(int(cu_seqlens_q[n]), int(cu_seqlens_q[n + 1]))
        ks = slice(int(cu_seqlens_k[n]), int(cu_seqlens_k[n + 1]))
        out.append(_attend(q[qs], k[ks], v[ks], softmax_scale, causal, window_size, softcap))
    return torch.cat(out)


CALLS = {"flash": 0, "varlen": 0}


def install(monkeypatch) -> dict:
    """Patches the stand-in into transformers' lazy flash loader; returns the call counters."""
    from transformers import modeling_flash_attention_utils as fa

    CALLS.update(flash=0, varlen=0)
    monkeypatch.setattr(fa, "_loaded_implementation", "flash_attention_2")
    monkeypatch.setattr(fa, "_flash_fn", flash_attn_func)
    monkeypatch.setattr(fa, "_flash_varlen_fn", flash_attn_varlen_func)
    monkeypatch.setattr(fa, "_flash_with_kvcache_fn", None)
    monkeypatch.setattr(fa, "_pad_fn", fa._pad_input)
    monkeypatch.setattr(fa, "_unpad_fn", fa._unpad_input)
    monkeypatch.setattr(
        fa, "_process_flash_kwargs_fn", fa._lazy_define_process_function(flash_attn_varlen_func)
    )
    monkeypatch.setattr(fa, "_process_with_kvcache_kwargs_fn", dict)
    return CALLS
