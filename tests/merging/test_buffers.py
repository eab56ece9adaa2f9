"""CPU memory of STTM merging that outlives a call: scratch buffers and the output pool."""

from __future__ import annotations

import io

import torch

from lmms_sttm.merging.buffers import output_tensor, release_buffers, workspace
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
    half = merge_video(x.to(torch.bfloat16), 0.8, 0.5)
    assert half.features.dtype == torch.bfloat16
    upcast = merge_video(x.to(torch.bfloat16).float(), 0.8, 0.5)  # the same values, already fp32
    assert torch.equal(half.token_map, upcast.token_map)
    assert torch.equal(half.features, upcast.features.to(torch.bfloat16))
    scratch = workspace("leaves", x.numel(), torch.float32, CPU)
    assert torch.equal(scratch.view(x.shape), x.to(torch.bfloat16).float())  # the last conversion


def test_output_memory_is_reused_only_once_every_tensor_from_it_is_freed():
    release_buffers()
    a = output_tensor(300, 64, torch.float32, CPU)
    first = a.data_ptr()
    b = output_tensor(300, 64, torch.float32, CPU)
    c = output_tensor(300, 64, torch.float32, CPU)  # both pooled buffers busy: allocated outside
    assert len({first, b.data_ptr(), c.data_ptr()}) == 3
    a.fill_(7.0)
    row = a[5]  # a view keeps the buffer busy
    del a
    d = output_tensor(300, 64, torch.float32, CPU)
    assert d.data_ptr() != first and bool((row == 7.0).all())
    del row, d
    e = output_tensor(150, 64, torch.float64, CPU)  # idle and big enough, any dtype
    assert e.data_ptr() == first and e.dtype == torch.float64 and e.shape == (150, 64)
    release_buffers()


def test_a_tensor_from_the_pool_holds_exactly_its_own_elements():
    release_buffers()
    big = output_tensor(1000, 32, torch.float32, CPU)
    big.fill_(123.0)  # stale contents of the buffer
    del big
    small = output_tensor(10, 32, torch.float32, CPU)
    small.fill_(1.0)
    assert small.untyped_storage().nbytes() == 10 * 32 * 4
    saved = io.BytesIO()
    torch.save(small, saved)
    assert len(saved.getvalue()) < 10 * 32 * 4 + 2048  # the buffer's other 31,680 floats stay out
    saved.seek(0)
    assert torch.equal(torch.load(saved), torch.ones(10, 32))
    release_buffers()


def test_merge_results_reuse_freed_output_memory_and_never_alias_live_ones():
    x = torch.randn(4, 14, 14, 32, generator=torch.Generator().manual_seed(9))
    release_buffers()
    first = merge_video(x, 0.8, 0.5)
    kept = first.features.clone()
    second = merge_video(x, 0.8, 0.5)
    assert second.features.data_ptr() != first.features.data_ptr()
    address = first.features.data_ptr()
    del first
    third = merge_video(x, 0.8, 0.5)
    assert third.features.data_ptr() == address  # the freed result's memory, no fresh pages
    assert torch.equal(second.features, kept) and torch.equal(third.features, kept)


def test_other_devices_allocate_plainly():
    out = output_tensor(3, 4, torch.float16, torch.device("meta"))
    assert out.device.type == "meta" and out.shape == (3, 4) and out.dtype == torch.float16
