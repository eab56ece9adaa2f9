"""The reusable CPU scratch memory of STTM merging."""

from __future__ import annotations

import torch

from lmms_sttm.merging.buffers import release_buffers, workspace
from lmms_sttm.merging.sttm import merge_video

CPU = torch.device("cpu")


def test_workspace_is_reused_per_name_and_grows_when_needed():
    release_buffers()
    a = workspace("a", 1000, torch.float32, CPU)
    assert a.shape == (1000,) and a.dtype == torch.float32
    assert workspace("a", 800, torch.float32, CPU).data_ptr() == a.data_ptr()
    assert workspace("b", 800, torch.float32, CPU).data_ptr() != a.data_ptr()
    assert workspace("a", 100, torch.float64, CPU).dtype == torch.float64  # new buffer for a new dtype
    bigger = workspace("a", 10_000, torch.float64, CPU)
    assert bigger.numel() == 10_000
    release_buffers()
    assert workspace("a", 10_000, torch.float64, CPU).numel() == 10_000


def test_converted_inputs_go_through_scratch_memory_and_match_float32():
    x = torch.randn(3, 7, 5, 16, generator=torch.Generator().manual_seed(4))
    release_buffers()
    ref = merge_video(x, 0.8, 0.5)
    half = merge_video(x.to(torch.bfloat16), 0.8, 0.5)
    assert half.features.dtype == torch.bfloat16
    upcast = merge_video(x.to(torch.bfloat16).float(), 0.8, 0.5)  # the same values, already fp32
    assert torch.equal(half.token_map, upcast.token_map)
    assert torch.equal(half.features, upcast.features.to(torch.bfloat16))
    scratch = workspace("leaves", x.numel(), torch.float32, CPU)
    assert torch.equal(scratch.view(x.shape), x.to(torch.bfloat16).float())  # the last conversion
    assert ref.features.dtype == torch.float32
