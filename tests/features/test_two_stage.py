"""Extract features with the lmms-eval model, evaluate from them: same answers and statistics as from
the videos; resumable extraction; missing files fail their samples; the authors' files read back."""

from __future__ import annotations

import pickle
import re

import pytest
import torch
from lmms_eval.api.instance import GenerationResult, Instance

from lmms_sttm.data.synthetic import ClipSpec, ensure_clip
from lmms_sttm.features.errors import FeatureMismatchError
from lmms_sttm.features.extract import layout_for
from lmms_sttm.features.store import load_metadata, load_tensor
from lmms_sttm.models.failures import RunStopped
from lmms_sttm.models.llava_video_sttm import LlavaVideoSttm
from lmms_sttm.models.qwen2_vl_sttm import Qwen2VLSttm, Qwen25VLSttm
from lmms_sttm.models.video_inputs import llava_from_tower, llava_tower_shape, qwen_feature_dim

CLASSES = {"llava_video": LlavaVideoSttm, "qwen2_vl": Qwen2VLSttm, "qwen2_5_vl": Qwen25VLSttm}
TASK = "probe_sttm"
COMPARED = (
    "doc_id",
    "frames",
    "video_seconds",
    "visual_tokens",
    "visual_tokens_kept",
    "new_tokens",
    "answer",
)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    a = ensure_clip(ClipSpec(num_frames=24, height=112, width=176, fps=4, seed=1, needle_at=5), d / "a.mp4")
    b = ensure_clip(ClipSpec(num_frames=15, height=96, width=96, fps=4, seed=2, cut_at=8), d / "b.mp4")
    return {0: str(a), 1: str(a), 2: str(b)}


def _run(model, paths: dict[int, str], task: str = TASK) -> list[str]:
    model.task_dict = {task: {"test": {i: {"path": p} for i, p in paths.items()}}}
    reqs = []
    for i in paths:
        args = (f"Question {i}?", {"max_new_tokens": 4}, lambda d: [d["path"]], i, task, "test")
        reqs.append(Instance("generate_until", args, i, {"task": task, "doc_id": i, "repeats": 1}))
    return [o.text if isinstance(o, GenerationResult) else o for o in model.generate_until(reqs)]


def _rows(model) -> list[dict]:
    return [{k: r.get(k) for k in COMPARED} for r in model.stats.records]


@pytest.mark.parametrize("arch", sorted(CLASSES))
def test_features_give_the_answers_and_statistics_of_the_videos(arch, tiny_checkpoints, clips, tmp_path):
    ckpt, cls = tiny_checkpoints(arch), CLASSES[arch]
    root = str(tmp_path / "datasets")
    ext = cls(pretrained=ckpt, method="none", features=root, features_mode="extract", stats_dir=str(tmp_path))
    assert _run(ext, clips) == ["", "", ""]
    layout = layout_for(ext, TASK)
    fps, cap = ext.frames_for(TASK)
    assert layout.directory.name == f"F-{cap}_fps-{fps:g}" and layout.directory.parent.name == arch
    files = sorted(layout.directory.rglob("*.*"))
    assert [f.relative_to(layout.directory).as_posix() for f in files] == [
        "features/a.pt", "features/b.pt", "metadata/a.pkl", "metadata/b.pkl"
    ]  # fmt: skip
    for vid in ("a", "b"):
        x, meta = load_tensor(layout.feature_path(vid)), load_metadata(layout.metadata_path(vid))
        assert x.dtype == ext.model.dtype and meta["vid"] == vid
        if arch == "llava_video":
            assert tuple(x.shape[1:]) == llava_tower_shape(ext.model)
            assert meta["num_frames"] == x.shape[0] and meta["frame_time"].startswith("0.00s,1.00s,")
            assert meta["video_time"] == {"a": 6.0, "b": 3.75}[vid]
        else:
            t, h2, w2, dim = x.shape
            assert dim == qwen_feature_dim(ext.model) and meta["video_grid_thw"] == [t, 2 * h2, 2 * w2]
            assert len(meta["frame_time"]) == 2 * t and meta["frame_time"][:2] == [0.0, 0.5]
    # resumable: finished videos are skipped, a half-written one is redone
    stamps = {f: f.stat().st_mtime_ns for f in files}
    layout.metadata_path("b").unlink()
    _run(ext, clips)
    assert all(f.stat().st_mtime_ns == stamps[f] for f in files if "b." not in f.name)
    assert (
        layout.metadata_path("b").is_file() and layout.feature_path("b").stat().st_mtime_ns > stamps[files[1]]
    )

    for method in ({"tau_s": 0.9, "tau_t": 0.8}, {"method": "none"}):
        from_video = cls(pretrained=ckpt, stats_dir=str(tmp_path / "v"), **method)
        from_feats = cls(pretrained=ckpt, features=root, stats_dir=str(tmp_path / "f"), **method)
        answers = _run(from_video, clips)
        assert _run(from_feats, clips) == answers
        assert _rows(from_feats) == _rows(from_video)
        assert all(r["error"] is None and r["visual_tokens_kept"] > 0 for r in from_feats.stats.records)
        v1, text1, _ = from_video.encode(clips[0], TASK)
        v2, text2, facts = from_feats.encode(clips[0], TASK)
        assert torch.equal(v1.features, v2.features) and v1.grid == v2.grid and text1 == text2
        assert facts["features"] == str(layout.feature_path("a"))
        for key, value in v1.extra.items():
            assert torch.equal(value, v2.extra[key])
    assert text1 is not None if arch == "llava_video" else text1 is None


def test_missing_and_mismatched_features(tiny_checkpoints, clips, tmp_path):
    ckpt = tiny_checkpoints("llava_video")
    m = LlavaVideoSttm(pretrained=ckpt, tau_s=0.9, tau_t=0.8, features=str(tmp_path), stats_dir=str(tmp_path))
    assert _run(m, clips) == ["", "", ""]
    failed = m.stats.records
    want = str(layout_for(m, TASK).feature_path("a"))
    assert [r["doc_id"] for r in failed] == [0, 1, 2] and f"feature file not found: {want}" in failed[0][
        "error"
    ]
    layout = layout_for(m, TASK)
    n, c = llava_tower_shape(m.model)
    for vid in ("a", "b"):  # features of another model: wrong channel count
        layout.feature_path(vid).parent.mkdir(parents=True, exist_ok=True)
        layout.metadata_path(vid).parent.mkdir(parents=True, exist_ok=True)
        torch.save(torch.zeros(3, n, c + 8), layout.feature_path(vid))
        layout.metadata_path(vid).write_bytes(
            pickle.dumps({"vid": vid, "video_time": 3.0, "frame_time": "0.00s"})
        )
    with pytest.raises(RunStopped) as stopped:  # a system error: the run stops on every rank
        _run(m, clips)
    assert isinstance(stopped.value.__cause__, FeatureMismatchError)
    assert re.search(r"a\.pt: shape \(3, \d+, \d+\) does not fit", str(stopped.value.__cause__))


def _authors_files(directory, vid: str, tensor: torch.Tensor, meta: dict) -> None:
    """Write one video the way the authors' scripts do: torch.save of a tensor, pickle.dump of a dict."""
    (directory / "features").mkdir(parents=True, exist_ok=True)
    (directory / "metadata").mkdir(parents=True, exist_ok=True)
    torch.save(tensor, directory / "features" / f"{vid}.pt")
    with open(directory / "metadata" / f"{vid}.pkl", "wb") as f:
        pickle.dump(meta, f)


def test_authors_format_round_trip(tiny_checkpoints, clips, tmp_path):
    """bf16 files in the authors' layout (VNBench: F-180_fps-1 / F-360_fps-2) are read by the models."""
    root, task = tmp_path / "datasets", "vnbench_sttm"
    llava = LlavaVideoSttm(
        pretrained=tiny_checkpoints("llava_video"), method="none", features=str(root),
        features_ckpt="llava-video-7b-qwen2-video-only",
    )  # fmt: skip
    ref, ref_text, ref_facts = LlavaVideoSttm(
        pretrained=tiny_checkpoints("llava_video"), method="none"
    ).encode(clips[0], task)
    n, c = llava_tower_shape(llava.model)
    tower = torch.randn(ref_facts["frames"], n, c).to(torch.bfloat16)
    stamps = ",".join(f"{k:.2f}s" for k in range(ref_facts["frames"] - 1)) + ",5.75s"
    d = root / "vnbench/preprocess_data/llava-video-7b-qwen2-video-only/F-180_fps-1"
    _authors_files(d, "a", tower, {"vid": "a", "video_time": 6.0, "frame_time": stamps, "num_frames": 7})
    video, text, facts = llava.encode(clips[0], task)
    assert facts["features"] == str(d / "features/a.pt") and facts["frames"] == ref_facts["frames"]
    assert torch.equal(video.features, llava_from_tower(llava.model, tower.float(), "no_token").features)
    assert video.features.shape == ref.features.shape and video.grid == ref.grid
    assert text == ref_text  # the time instruction rebuilt from the "0.00s,..." string

    qwen = Qwen2VLSttm(pretrained=tiny_checkpoints("qwen2_vl"), method="none", features=str(root))
    dim = qwen_feature_dim(qwen.model)
    merged = torch.randn(2, 3, 5, dim).to(torch.bfloat16)
    d = root / f"vnbench/preprocess_data/{layout_for(qwen, task).ckpt}/F-360_fps-2"
    meta = {
        "vid": "b",
        "video_sample_fps": 2.0,
        "frame_time": [0.0, 0.5, 1.0, 1.5],
        "video_grid_thw": [2, 6, 10],
    }
    _authors_files(d, "b", merged, meta)
    video, text, facts = qwen.encode(clips[2], task)
    assert video.grid == (2, 3, 5) and video.extra["video_grid_thw"].tolist() == [[2, 6, 10]]
    assert torch.equal(video.features, merged.float().reshape(30, dim)) and facts["frames"] == 4
    assert text is None and facts["video_seconds"] is None
    answers = _run(qwen, {0: clips[2]}, task)  # the model runs on them (prefill with M-RoPE over the grid)
    assert qwen.stats.records[0]["error"] is None and qwen.stats.records[0]["visual_tokens"] == 30
    assert isinstance(answers[0], str)
