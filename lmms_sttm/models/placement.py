"""Where a rank's model lives and how it runs: device, dtype, attention implementation.

- Device: under several processes every rank must own its GPU. ``device=cuda`` or ``cuda:0``
  (``--device cuda:0`` is lmms-eval's habit) would put all ranks on GPU 0, so it is mapped to
  ``cuda:$LOCAL_RANK``; another explicit index under several processes stops at start-up.
- Dtype: ``auto`` is bf16 on CUDA, fp32 elsewhere.
- Attention: ``auto`` picks flash-attention 2 only on CUDA, in fp16/bf16 (the only dtypes it
  supports), and only when ``flash_attn`` really imports (a build for another torch fails at
  import although its package metadata is present); otherwise sdpa, with a one-line warning
  naming why when CUDA was in use.
"""

from __future__ import annotations

import os

import torch
from loguru import logger

FLASH_DTYPES = (torch.float16, torch.bfloat16)


def local_rank(rank: int) -> int:
    """The rank's GPU index on its node: ``$LOCAL_RANK``, else the global rank."""
    return int(os.environ.get("LOCAL_RANK", rank))


def pick_device(requested: str | None, rank: int, world_size: int) -> torch.device:
    """The rank's device from ``device=`` (None: ``cuda:$LOCAL_RANK`` when CUDA is available, else CPU)."""
    if not requested:
        return torch.device("cuda", local_rank(rank)) if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(requested)
    if device.type != "cuda" or world_size <= 1:
        return device
    own = torch.device("cuda", local_rank(rank))
    if device.index in (None, 0):
        if device != own:
            logger.info(f"device={requested} under {world_size} processes: rank {rank} uses {own}")
        return own
    raise ValueError(
        f"device={requested} under {world_size} processes would put every rank on the same GPU; pass "
        f"device=cuda (each rank takes cuda:$LOCAL_RANK) or run one process per chosen GPU"
    )


def pick_dtype(requested: str, device: torch.device) -> torch.dtype:
    if requested == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, requested)


def flash_attn_problem() -> str | None:
    """Why flash-attention 2 cannot run here (None when ``flash_attn`` imports with its kernels)."""
    try:
        from flash_attn import flash_attn_func, flash_attn_varlen_func  # noqa: F401
    except Exception as exc:  # not installed, or a build for another torch/CUDA (undefined symbols)
        return f"flash_attn cannot be imported ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
    return None


def pick_attention(requested: str, device: torch.device, dtype: torch.dtype) -> str:
    """``requested`` unless ``auto``: flash_attention_2 on CUDA in fp16/bf16 when it imports, else sdpa.

    An explicit ``flash_attention_2`` in another dtype stops at start-up (it would fail every video).
    """
    if requested == "flash_attention_2" and dtype not in FLASH_DTYPES:
        raise ValueError(
            f"attn_implementation=flash_attention_2 needs dtype=bfloat16 or float16 (flash-attn supports no "
            f"other), got {dtype}; use attn_implementation=sdpa or auto"
        )
    if requested != "auto":
        return requested
    if device.type != "cuda":
        return "sdpa"
    if dtype not in FLASH_DTYPES:
        logger.warning(f"attn_implementation=auto: sdpa, because flash-attention 2 does not support {dtype}")
        return "sdpa"
    problem = flash_attn_problem()
    if problem is not None:
        logger.warning(f"attn_implementation=auto: sdpa, because {problem}")
        return "sdpa"
    return "flash_attention_2"
