"""Layout names, tensor/metadata storage, and the restricted unpickler against a crafted pickle."""

from __future__ import annotations

import os
import pickle
from collections import OrderedDict

import pytest
import torch

from lmms_sttm.features.layout import FeatureLayout, ckpt_dirname, sampling_name, video_id
from lmms_sttm.features.store import (
    UnsafePickleError,
    load_metadata,
    load_tensor,
    loads_metadata,
    save_metadata,
    save_tensor,
)


def test_layout_follows_the_authors_names(tmp_path):
    assert sampling_name(1.0, 128) == "F-128_fps-1"
    assert sampling_name(2, 360) == "F-360_fps-2"
    assert sampling_name(0.5, 64) == "F-64_fps-0.5"
    assert ckpt_dirname("lmms-lab/LLaVA-Video-7B-Qwen2-Video-Only/") == "llava-video-7b-qwen2-video-only"
    assert video_id("/data/videomme/videos/fFjv93ACGo8.mp4") == "fFjv93ACGo8"
    lay = FeatureLayout.for_run(str(tmp_path), "/ckpts/Qwen2-VL-7B-Instruct", "vnbench_sttm", 2.0, 360)
    want = tmp_path / "vnbench/preprocess_data/qwen2-vl-7b-instruct/F-360_fps-2"
    assert lay.directory == want
    assert lay.feature_path("v1") == want / "features/v1.pt"
    assert lay.metadata_path("v1") == want / "metadata/v1.pkl"
    other = FeatureLayout.for_run(str(tmp_path), "x/y", "synthetic_needle_sttm", 1.0, 128, ckpt="mine")
    assert other.directory == tmp_path / "synthetic_needle_sttm/preprocess_data/mine/F-128_fps-1"


def test_tensor_and_metadata_round_trip(tmp_path):
    x = torch.randn(3, 729, 1152).to(torch.bfloat16)
    save_tensor(tmp_path / "f" / "a.pt", x)
    y = load_tensor(tmp_path / "f" / "a.pt")
    assert y.dtype == torch.bfloat16 and torch.equal(x, y)
    meta = {"vid": "a", "video_time": 6.25, "frame_time": "0.00s,1.00s", "num_frames": 2, "g": [1, (2, 3)]}
    save_metadata(tmp_path / "m" / "a.pkl", meta)
    assert load_metadata(tmp_path / "m" / "a.pkl") == meta
    assert not [p for p in (tmp_path / "m").iterdir() if p.name.startswith(".")]  # no temp files left
    # a pickle written by plain pickle (the authors' way), with sets and OrderedDict, loads too
    plain = {"vid": "b", "s": {1, 2}, "o": OrderedDict(a=1), "f": frozenset({"x"})}
    for proto in (2, 4, 5):
        assert loads_metadata(pickle.dumps(plain, protocol=proto)) == plain
    with pytest.raises(TypeError, match="Tensor"):
        save_metadata(tmp_path / "m" / "bad.pkl", {"t": torch.zeros(1)})


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_crafted_metadata_pickle_does_not_execute(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"vid": "x", "payload": _Exploit(marker)}))
    with pytest.raises(UnsafePickleError, match="system"):
        load_metadata(evil)
    assert not marker.exists()
    pickle.loads(evil.read_bytes())  # the control: an ordinary unpickler would run it
    assert marker.exists()
    marker.unlink()
    evil_pt = tmp_path / "evil.pt"
    evil_pt.write_bytes(b"")
    torch.save({"x": _Exploit(marker)}, evil_pt)
    with pytest.raises(pickle.UnpicklingError):
        load_tensor(evil_pt)
    assert not marker.exists()
    with pytest.raises(TypeError, match="dict"):
        loads_metadata(pickle.dumps([1, 2]))
