"""``gpus_per_replica=G``: local rank r of P on a node gets GPUs [r*G, (r+1)*G) (mocked device counts),
P*G above the visible GPUs stops at start-up, and accelerate's ``device_map=auto`` keeps to them."""

from __future__ import annotations

import types

import pytest
import torch

from lmms_sttm.models import base
from lmms_sttm.models.llava_video_sttm import LlavaVideoSttm
from lmms_sttm.models.placement import place_rank, replica_gpus
from lmms_sttm.models.settings import ModelSettings

GIB = 1 << 30


@pytest.fixture
def eight_gpus(monkeypatch):
    """A node with 8 mocked 80 GiB GPUs (nothing touches a real device)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    monkeypatch.setattr(
        torch.cuda, "get_device_properties", lambda i: types.SimpleNamespace(total_memory=80 * GIB + i)
    )


@pytest.mark.parametrize(("gpus", "processes"), [(1, 8), (2, 4), (4, 2), (8, 1), (3, 2)])
def test_ranks_get_disjoint_consecutive_blocks(gpus, processes):
    blocks = [replica_gpus(gpus, r, processes, 8) for r in range(processes)]
    flat = [i for block in blocks for i in block]
    assert flat == list(range(gpus * processes))  # by hand: rank r -> r*G .. r*G+G-1, no overlap


@pytest.mark.parametrize(("gpus", "processes", "most"), [(4, 3, 2), (2, 5, 4), (8, 2, 1), (3, 3, 2)])
def test_more_gpus_than_visible_stops_with_the_fix(gpus, processes, most):
    with pytest.raises(ValueError) as err:
        replica_gpus(gpus, 0, processes, 8)
    text = str(err.value)
    assert f"needs {gpus * processes} GPUs, but 8 are visible" in text
    assert f"--num_processes {most}" in text


def test_rank_on_the_second_node_uses_its_local_rank(eight_gpus, monkeypatch):
    """Two nodes x 4 processes, G = 2: global rank 5 is local rank 1 -> GPUs 2, 3 of its node."""
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    device, where = place_rank(None, None, 2, rank=5, world_size=8)
    assert device == torch.device("cuda", 2)
    assert where == {"device_map": "auto", "max_memory": {2: 80 * GIB + 2, 3: 80 * GIB + 3}}


def test_world_size_counts_when_the_launcher_sets_no_local_world(eight_gpus, monkeypatch):
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.setenv("LOCAL_RANK", "0")
    with pytest.raises(ValueError, match="needs 12 GPUs, but 8 are visible"):
        place_rank(None, None, 4, rank=0, world_size=3)


def test_without_cuda_it_stops(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="needs CUDA"):
        place_rank(None, None, 2, rank=0, world_size=1)


def test_without_gpus_per_replica_placement_is_unchanged():
    assert place_rank("cpu", None, None, 0, 1) == (torch.device("cpu"), {"device_map": {"": "cpu"}})
    assert place_rank("cpu", "auto", None, 0, 1)[1] == {"device_map": "auto"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"gpus_per_replica": 0}, "positive integer"),
        ({"gpus_per_replica": "two"}, "positive integer"),
        ({"gpus_per_replica": 2, "device_map": "balanced"}, "device_map='balanced'"),
        ({"gpus_per_replica": 2, "device": "cuda:3"}, "device='cuda:3'"),
        ({"prefetch": -1}, "non-negative integer"),
        ({"prefetch": True}, "non-negative integer"),
    ],
)
def test_settings_reject_bad_values(args, message):
    with pytest.raises(ValueError, match=message):
        ModelSettings.from_model_args(pretrained="x", method="none", **args)


def test_settings_accept_the_recipes():
    s = ModelSettings.from_model_args(pretrained="x", method="none", gpus_per_replica=4, device_map="auto")
    assert (s.gpus_per_replica, s.prefetch) == (4, 1)
    assert ModelSettings.from_model_args(pretrained="x", method="none", prefetch=0).prefetch == 0


def test_model_loads_its_replica_on_its_gpus(eight_gpus, monkeypatch, tiny_checkpoints):
    """``accelerate launch --num_processes 2`` with G = 4: rank 1 loads onto GPUs 4-7 only."""
    for k, v in {"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(k, v)
    loads: list[dict] = []

    class Placed(Exception):
        """Raised by the stand-in loader once it has seen the placement."""

    def load(pretrained, **kwargs):
        loads.append(kwargs)
        raise Placed

    monkeypatch.setattr(base, "load_checkpoint", load)
    with pytest.raises(Placed):
        LlavaVideoSttm(pretrained=tiny_checkpoints("llava_video"), method="none", gpus_per_replica=4)
    (where,) = loads
    assert where["device_map"] == "auto" and sorted(where["max_memory"]) == [4, 5, 6, 7]
    assert where["dtype"] == torch.bfloat16


def test_accelerate_auto_map_keeps_to_the_replica_gpus(eight_gpus, tiny_checkpoints):
    """accelerate's own planner, given our ``max_memory``, spreads the model over GPUs 2 and 3 only."""
    from accelerate import infer_auto_device_map, init_empty_weights
    from transformers import AutoConfig, LlavaOnevisionForConditionalGeneration

    config = AutoConfig.from_pretrained(tiny_checkpoints("llava_onevision"))
    with init_empty_weights():
        model = LlavaOnevisionForConditionalGeneration(config)
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    memory = {2: size // 2 + size // 8, 3: size}  # the first cannot hold it all: both are used
    device_map = infer_auto_device_map(
        model, max_memory=memory, no_split_module_classes=model._no_split_modules
    )
    assert set(device_map.values()) == {2, 3}


def test_device_follows_the_local_rank_on_every_node(monkeypatch):
    """Global rank 1 on the second node (LOCAL_RANK 0) takes that node's GPU 0, not GPU 1."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "0")
    device, where = place_rank(None, None, None, rank=1, world_size=2)
    assert device == torch.device("cuda", 0) and where == {"device_map": {"": "cuda:0"}}
