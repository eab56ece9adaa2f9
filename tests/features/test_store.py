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
    with pytest.raises(UnsafePickleError, match="Parameter|parameter"):  # not a plain tensor
        save_metadata(tmp_path / "m" / "bad.pkl", {"t": torch.nn.Parameter(torch.zeros(1))})
    assert not (tmp_path / "m" / "bad.pkl").exists()


def test_metadata_with_tensors_loads_as_plain_values(tmp_path):
    """The authors' Qwen2-VL metadata (after their DataLoader collate): tensors come back as lists."""
    strided = torch.arange(12, dtype=torch.bfloat16).reshape(3, 4)[:, 1]  # offset and stride
    meta = {
        "vid": "b",
        "video_sample_fps": 2.0,
        "frame_time": torch.tensor([0.25], dtype=torch.float64),
        "video_grid_thw": torch.tensor([[2, 6, 10]], dtype=torch.int64),
        "scalar": torch.tensor(7),
        "strided": strided,
        "raw": b"\x00\xff",
    }
    want = {
        "vid": "b",
        "video_sample_fps": 2.0,
        "frame_time": [0.25],
        "video_grid_thw": [[2, 6, 10]],
        "scalar": 7,
        "strided": [1.0, 5.0, 9.0],
        "raw": b"\x00\xff",
    }
    for proto in (2, 3, 4, 5):
        assert loads_metadata(pickle.dumps(meta, protocol=proto)) == want
    save_metadata(tmp_path / "a.pkl", meta)
    assert load_metadata(tmp_path / "a.pkl") == want
    with open(tmp_path / "a.pkl", "rb") as f:  # an ordinary reader gets the tensors back
        back = pickle.load(f)
    assert back["video_grid_thw"].dtype == torch.int64 and back["video_grid_thw"].shape == (1, 3)
    assert torch.equal(back["strided"], strided) and back["frame_time"].dtype == torch.float64


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Storage:
    """Pickles as torch's storage call ``torch.storage._load_from_bytes(payload)``."""

    def __init__(self, payload: bytes):
        self.payload = payload

    def __reduce__(self):
        return (torch.storage._load_from_bytes, (self.payload,))


class _Tensor:
    """Pickles as torch's tensor call ``torch._utils._rebuild_tensor_v2(storage, ...)``."""

    def __init__(self, storage, size=(1,), stride=(1,), hooks=None):
        self.args = (storage, 0, size, stride, False, OrderedDict() if hooks is None else hooks)

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, self.args)


@pytest.mark.filterwarnings("ignore:TypedStorage is deprecated")
def test_tensor_storage_payload_cannot_run_code(tmp_path):
    """A storage payload that runs code when torch loads it with ``weights_only=False`` is refused."""
    marker = tmp_path / "pwned"
    payload = tmp_path / "payload"
    torch.save(_Exploit(marker), payload, _use_new_zipfile_serialization=False)  # torch's storage format
    evil = pickle.dumps({"vid": "x", "video_grid_thw": _Tensor(_Storage(payload.read_bytes()))}, protocol=4)
    with pytest.raises(UnsafePickleError, match="weights_only"):
        loads_metadata(evil)
    assert not marker.exists()
    with pytest.raises(AttributeError):  # the control: torch's own _load_from_bytes runs it
        pickle.loads(evil)  # (os.system's exit code then fails as a storage)
    assert marker.exists()
    marker.unlink()
    # a genuine storage with crafted rebuild arguments: a hook, a non-int size, a non-storage
    good = pickle.dumps(torch.tensor([1, 2, 3]))
    assert loads_metadata(pickle.dumps({"t": pickle.loads(good)})) == {"t": [1, 2, 3]}
    storage = pickle.loads(good).storage()
    bad = [
        _Tensor(storage, hooks=OrderedDict(h=1)),
        _Tensor(storage, size=(1.5,)),
        _Tensor(b"not a storage"),
        _Tensor(_Storage(pickle.dumps({"not": "a storage"}, protocol=2))),
    ]
    for obj in bad:
        with pytest.raises(pickle.UnpicklingError):
            loads_metadata(pickle.dumps({"t": obj}, protocol=4))


class _Codec:
    def __reduce__(self):
        import _codecs

        return (_codecs.encode, ("x", "rot13"))


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
    with pytest.raises(UnsafePickleError, match="rot13"):  # bytes of protocol <= 2: latin1 only
        loads_metadata(pickle.dumps({"x": _Codec()}))
