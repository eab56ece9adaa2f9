"""Process facts shared by the model classes: rank and world size under any launcher."""

from __future__ import annotations

import os


def dist_rank_world() -> tuple[int, int]:
    """``(rank, world_size)`` from torch.distributed when initialised, else from the environment.

    On CPU, accelerate's state can report a single process although torchrun or
    ``accelerate launch --multi_gpu`` (gloo) started several, so it is not consulted.
    """
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
    except ImportError:
        pass
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
