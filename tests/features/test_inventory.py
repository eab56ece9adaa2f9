"""``python -m lmms_sttm.features list``: the feature sets under a root, whether they load, and the
move a misplaced download needs."""

from __future__ import annotations

import json
import os
import pickle

import torch

from lmms_sttm.features.__main__ import main
from lmms_sttm.features.inventory import inventory


def _pair(directory, vid, tensor, meta, legacy=False):
    (directory / "features").mkdir(parents=True, exist_ok=True)
    (directory / "metadata").mkdir(parents=True, exist_ok=True)
    torch.save(tensor, directory / "features" / f"{vid}.pt", _use_new_zipfile_serialization=not legacy)
    (directory / "metadata" / f"{vid}.pkl").write_bytes(pickle.dumps(meta))


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_inventory_reads_each_set_like_evaluation(tmp_path, capsys):
    root = tmp_path / "datasets"
    llava = root / "vnbench/preprocess_data/llava-video-7b-qwen2-video-only/F-180_fps-1"
    _pair(llava, "v1", torch.zeros(3, 9, 8, dtype=torch.bfloat16), {
        "vid": "v1", "video_time": 3.0, "frame_time": "0.00s,1.00s,2.00s", "num_frames": 3,
    })  # fmt: skip
    _pair(llava, "v2", torch.zeros(2, 9, 8), {"vid": "v2"})
    (llava / "features" / "v3.pt").write_bytes(b"")  # no metadata: counted, not read
    qwen = root / "videomme/preprocess_data/qwen2-vl-7b-instruct/F-256_fps-2"
    _pair(qwen, "q1", torch.zeros(2, 3, 5, 16), {
        "vid": "q1", "video_sample_fps": 2.0, "frame_time": torch.tensor([0.0], dtype=torch.float64),
        "video_grid_thw": torch.tensor([[2, 6, 10]]),
    }, legacy=True)  # fmt: skip
    marker = tmp_path / "pwned"
    bad = root / "videomme/preprocess_data/other/F-64_fps-1"
    _pair(bad, "b1", torch.zeros(1), {"vid": "b1", "x": _Exploit(marker)})

    sets, moves = inventory(root)
    assert moves == [] and not marker.exists()
    by_ckpt = {s.ckpt: s for s in sets}
    assert [(s.bench, s.ckpt, s.sampling) for s in sets] == [
        ("videomme", "other", "F-64_fps-1"),
        ("videomme", "qwen2-vl-7b-instruct", "F-256_fps-2"),
        ("vnbench", "llava-video-7b-qwen2-video-only", "F-180_fps-1"),
    ]
    lv = by_ckpt["llava-video-7b-qwen2-video-only"]
    assert (lv.videos, lv.metadata, lv.family, lv.shape, lv.dtype) == (3, 2, "llava", (3, 9, 8), "bfloat16")
    assert lv.keys == ("frame_time", "num_frames", "vid", "video_time") and lv.error is None
    q = by_ckpt["qwen2-vl-7b-instruct"]
    assert (q.family, q.shape, q.error) == ("qwen", (2, 3, 5, 16), None)
    assert "UnsafePickleError" in by_ckpt["other"].error and "system" in by_ckpt["other"].error

    assert main(["list", "--root", str(root)]) == 1  # one set does not load
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [d["ckpt"] for d in lines] == ["other", "qwen2-vl-7b-instruct", "llava-video-7b-qwen2-video-only"]
    assert "video_grid_thw" in lines[1]["keys"] and lines[1]["family"] == "qwen"


def test_a_download_into_the_root_itself_is_named_with_its_move(tmp_path, capsys):
    root = tmp_path / "datasets"
    _pair(root / "preprocess_data/llava-video-7b-qwen2-video-only/F-64_fps-1", "v", torch.zeros(1, 2, 3), {
        "vid": "v", "video_time": 1.0, "frame_time": "0.00s", "num_frames": 1,
    })  # fmt: skip
    sets, moves = inventory(root)
    assert sets == [] and len(moves) == 1
    assert f"move it to {root / '<bench>' / 'preprocess_data'}" in moves[0]
    assert main(["list", "--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert "move: " in err and "no feature set under" in err
    (root / "vnbench").mkdir()
    (root / "preprocess_data").rename(root / "vnbench" / "preprocess_data")  # the one move
    sets, moves = inventory(root)
    assert moves == [] and [(s.bench, s.family, s.error) for s in sets] == [("vnbench", "llava", None)]
    assert main(["list", "--root", str(root)]) == 0
