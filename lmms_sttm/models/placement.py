"""Where a rank's model lives and how it runs: device, dtype, attention implementation.

- Device: under several processes every rank must own its GPU. ``device=cuda`` or ``cuda:0``
  (``--device cuda:0`` is lmms-eval's habit) would put all ranks on GPU 0, so it is mapped to
  ``cuda:$LOCAL_RANK``; another explicit index under several processes stops at start-up.
- Replicas over several GPUs: ``gpus_per_replica=G`` under ``--num_processes P`` (per node) gives
  local rank r the GPUs ``[r*G, (r+1)*G)``: ``device_map=auto`` restricted to them by
  ``max_memory``, inputs on the first (:func:`place_rank`); ``P*G`` must not exceed the visible GPUs.
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


def local_world_size(world_size: int) -> int:
    """Processes on this node: ``$LOCAL_WORLD_SIZE`` (torchrun, accelerate), else the world size."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", world_size))


def replica_gpus(gpus_per_replica: int, local: int, local_world: int, visible: int) -> list[int]:
    """GPU indices of local rank ``local``'s replica: ``[local*G, (local+1)*G)``.

    Raises when the node's ``local_world`` processes need more than its ``visible`` GPUs.
    """
    need = local_world * gpus_per_replica
    if need > visible:
        most = visible // gpus_per_replica
        raise ValueError(
            f"gpus_per_replica={gpus_per_replica} with {local_world} processes on this node needs {need} GPUs, "
            f"but {visible} are visible (CUDA_VISIBLE_DEVICES); launch at most {most} processes per node "
            f"(accelerate launch --num_processes {most}) or lower gpus_per_replica"
        )
    return list(range(local * gpus_per_replica, (local + 1) * gpus_per_replica))


def place_rank(
    device: str | None, device_map: str | None, gpus_per_replica: int | None, rank: int, world_size: int
) -> tuple[torch.device, dict]:
    """``(device of the inputs, load_checkpoint placement kwargs)`` of this rank.

    Without ``gpus_per_replica``: :func:`pick_device`, weights straight onto it (no host copy per
    rank) unless ``device_map`` is given. With it: the replica's GPUs (:func:`replica_gpus`), each
    offered its whole memory to ``device_map=auto`` and every other GPU none (absent from
    ``max_memory``); the inputs go to the first, where accelerate puts the embeddings.
    """
    if gpus_per_replica is None:
        own = pick_device(device, rank, world_size)
        return own, {"device_map": device_map if device_map is not None else {"": str(own)}}
    if not torch.cuda.is_available():
        raise ValueError("gpus_per_replica= needs CUDA GPUs; none is available")
    gpus = replica_gpus(
        gpus_per_replica, local_rank(rank), local_world_size(world_size), torch.cuda.device_count()
    )
    memory = {i: torch.cuda.get_device_properties(i).total_memory for i in gpus}
    logger.info(f"rank {rank}: one replica on GPUs {gpus} (gpus_per_replica={gpus_per_replica})")
    return torch.device("cuda", gpus[0]), {"device_map": "auto", "max_memory": memory}


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
