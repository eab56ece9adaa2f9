"""CPU buffer placement of STTM merging: reusable scratch memory and huge-page outputs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from lmms_sttm.merging.memory import output_buffer, release_workspace, workspace

CPU = torch.device("cpu")
THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def test_workspace_is_reused_per_name_and_grows_when_needed():
    release_workspace()
    a = workspace("a", 1000, torch.float32, CPU)
    assert a.shape == (1000,) and a.dtype == torch.float32
    assert workspace("a", 800, torch.float32, CPU).data_ptr() == a.data_ptr()
    assert workspace("b", 800, torch.float32, CPU).data_ptr() != a.data_ptr()
    assert workspace("a", 100, torch.float64, CPU).dtype == torch.float64  # new buffer for a new dtype
    bigger = workspace("a", 10_000, torch.float64, CPU)
    assert bigger.numel() == 10_000
    release_workspace()
    assert workspace("a", 10_000, torch.float64, CPU).numel() == 10_000


def test_output_buffers_are_fresh_tensors_of_the_requested_shape():
    a = output_buffer(3000, 1000, torch.bfloat16, CPU)
    b = output_buffer(3000, 1000, torch.bfloat16, CPU)
    assert a.shape == (3000, 1000) and a.dtype == torch.bfloat16 and a.is_contiguous()
    assert a.data_ptr() != b.data_ptr()
    a.fill_(1.5)
    b.fill_(-2.0)
    assert bool((a == 1.5).all()) and bool((b == -2.0).all())
    assert output_buffer(2, 3, torch.float32, CPU).shape == (2, 3)  # small: no advice, same API


def _anon_huge_kib(address: int) -> int:
    """AnonHugePages of the mapping of this process that contains ``address`` (from smaps)."""
    lines = Path("/proc/self/smaps").read_text().splitlines()
    inside = False
    for line in lines:
        span = re.match(r"^([0-9a-f]+)-([0-9a-f]+) ", line)
        if span:
            inside = int(span.group(1), 16) <= address < int(span.group(2), 16)
        elif inside and line.startswith("AnonHugePages:"):
            return int(line.split()[1])
    return 0


@pytest.mark.skipif(
    not THP.exists() or "[never]" in THP.read_text(), reason="transparent huge pages are disabled here"
)
def test_big_outputs_are_backed_by_huge_pages():
    out = output_buffer(4096, 4096, torch.float32, CPU)  # 64 MiB
    out.fill_(1.0)
    assert _anon_huge_kib(out.data_ptr() + out.numel() * 2) >= 32 * 1024
    assert bool((out == 1.0).all())
