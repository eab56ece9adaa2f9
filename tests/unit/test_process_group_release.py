"""Our models destroy the default process group from ``atexit`` (lmms-eval never does), so the
group's native threads do not meet interpreter finalization (``runtime.release_process_group_at_exit``)."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import atexit, os
import torch.distributed as dist
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="0")
dist.init_process_group("gloo", rank=0, world_size=1, init_method="tcp://127.0.0.1:0")
atexit.register(lambda: print("initialized at exit:", dist.is_initialized(), flush=True))  # runs last
from lmms_sttm.runtime import release_process_group_at_exit
release_process_group_at_exit()
release_process_group_at_exit()  # once per process
print("initialized now:", dist.is_initialized(), flush=True)
"""


def test_the_group_is_destroyed_when_the_interpreter_exits():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["initialized now: True", "initialized at exit: False"]
