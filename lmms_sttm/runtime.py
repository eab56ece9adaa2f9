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


_RELEASE_REGISTERED = False


def release_process_group_at_exit() -> None:
    """Destroys the default process group when the interpreter exits (once per process).

    lmms-eval never calls ``destroy_process_group``: the group's native worker threads were then
    torn down during interpreter finalization, which now and then aborted a rank with "terminate
    called without an active exception" after its results were written (seen in 2-process CPU runs
    under load). Destroying the group first, from ``atexit``, ends them in order.
    """
    global _RELEASE_REGISTERED
    if _RELEASE_REGISTERED:
        return
    import atexit

    def release() -> None:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()

    atexit.register(release)
    _RELEASE_REGISTERED = True
