"""Extract features with the lmms-eval model, evaluate from them: same answers and statistics as from
the videos; resumable extraction; missing files fail their samples; the authors' files read back."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest
import torch
from lmms_eval.api.instance import GenerationResult, Instance
from torch.utils.data import default_collate

from lmms_sttm.data.synthetic import ClipSpec, ensure_clip
from lmms_sttm.features.errors import FeatureMismatchError
from lmms_sttm.features.extract import layout_for
from lmms_sttm.features.store import load_metadata, load_tensor
from lmms_sttm.models.failures import RunStopped
from lmms_sttm.models.llava_video_sttm import LlavaVideoSttm
from lmms_sttm.models.qwen2_vl_sttm import Qwen2VLSttm, Qwen25VLSttm
from lmms_sttm.models.video_inputs import (
    encode_qwen,
    even_frames,
    llava_from_tower,
    llava_tower_shape,
    qwen_feature_dim,
)
from lmms_sttm.video import load_video

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
        else:  # the authors' keys; their tensors come back as plain lists
            t, h2, w2, dim = x.shape
            assert set(meta) == {"vid", "video_sample_fps", "frame_time", "video_grid_thw"}
            assert dim == qwen_feature_dim(ext.model) and meta["video_grid_thw"] == [[t, 2 * h2, 2 * w2]]
            assert meta["frame_time"] == [0.0]
            assert 2 * t / meta["video_sample_fps"] == pytest.approx({"a": 6.0, "b": 3.75}[vid])
            _read_like_the_authors(layout, vid, x, ext.processor)
    # resumable: finished videos are skipped, a half-written one is redone
    stamps = {f: f.stat().st_mtime_ns for f in files}
    layout.metadata_path("b").unlink()
    _run(ext, clips)
    assert all(f.stat().st_mtime_ns == stamps[f] for f in files if "b." not in f.name)
    assert (
        layout.metadata_path("b").is_file() and layout.feature_path("b").stat().st_mtime_ns > stamps[files[1]]
    )

    _compare_with_videos(cls, ckpt, root, clips, layout, tmp_path)
    # the same features with the authors' metadata (their collate and save lines): the same again
    for vid, clip in (("a", clips[0]), ("b", clips[2])):
        _write_authors_metadata(ext, clip, layout.metadata_path(vid))
    _compare_with_videos(cls, ckpt, root, clips, layout, tmp_path / "authors", methods=METHODS[:1])


#: STTM, the unreduced model and a method from outside the package (``method=module:SPEC``)
METHODS = (
    {"tau_s": 0.9, "tau_t": 0.8},
    {"method": "none"},
    {"method": "tests.methods.broken_methods:WORKS", "budget": 30},
)


def _compare_with_videos(cls, ckpt, root, clips, layout, tmp_path, methods=METHODS) -> None:
    """Answers, statistics rows and model inputs from the features equal those from the videos."""
    arch = layout.ckpt
    for method in methods:
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


def _authors_collate(sample: dict) -> dict:
    """The authors' extraction loop's view of a dataset dict: ``default_collate`` of a batch of one."""
    return default_collate([sample])


def _write_authors_metadata(model, clip: str, path) -> None:
    """The metadata pickle the authors' extractor writes for ``clip`` (types after their collate).

    Their dataset returns plain values (LLaVA: ``video_time`` float, ``frame_time`` string,
    ``num_frames`` int; Qwen: ``video_sample_fps`` float, ``frame_time`` list of floats,
    ``video_grid_thw`` the processor's int64 ``[1, 3]``); the collate wraps each in a batch and
    their save lines take element 0 / ``.item()`` back out, keeping tensors where they stay tensors.
    """
    fps, cap = model.frames_for(TASK)
    frames, idx, info = load_video(clip, target_fps=fps, max_frames=cap)
    vid = Path(clip).stem
    if model.family == "qwen":
        frames, idx = even_frames(frames, idx)
        grid = encode_qwen(model.model, model.processor, frames, fps).extra["video_grid_thw"]
        assert grid.dtype == torch.int64 and grid.shape == (1, 3)
        sample = {
            "vid": vid,
            "video_sample_fps": len(idx) / info.num_frames * info.fps,
            "frame_time": [i / info.fps for i in idx],
            "video_grid_thw": grid,
        }
        meta = _authors_collate(sample)
        meta["video_sample_fps"] = meta["video_sample_fps"].item()
        meta["video_grid_thw"] = meta["video_grid_thw"][0].cpu()
    else:
        sample = {
            "vid": vid,
            "video_time": float(info.duration),
            "frame_time": ",".join(f"{i / info.fps:.2f}s" for i in idx),
            "num_frames": len(idx),
        }
        meta = _authors_collate(sample)
        meta["video_time"] = meta["video_time"].item()
        meta["num_frames"] = meta["num_frames"].item()
    meta["vid"] = meta["vid"][0]
    meta["frame_time"] = meta["frame_time"][0]
    if model.family == "qwen":  # the exact types of their Qwen2-VL files
        assert isinstance(meta["video_grid_thw"], torch.Tensor) and meta["video_grid_thw"].shape == (1, 3)
        assert meta["frame_time"].dtype == torch.float64 and meta["frame_time"].shape == (1,)
        assert "video_time" not in meta and "num_frames" not in meta
    else:
        assert all(isinstance(v, (str, int, float)) for v in meta.values())
    with open(path, "wb") as f:
        pickle.dump(meta, f)


def _read_like_the_authors(layout, vid: str, stored: torch.Tensor, processor) -> None:
    """Our Qwen metadata as the authors' feature reader uses it: plain ``pickle.load``, the grid a
    tensor (``video_grid_thw[0].prod() // merge**2`` video tokens), then their DataLoader's collate
    and ``[0]`` before the model gets ``video_grid_thw`` ``[1, 3]``."""
    with open(layout.metadata_path(vid), "rb") as f:
        meta = pickle.load(f)
    grid = meta["video_grid_thw"]
    merge = processor.video_processor.merge_size
    tokens = grid[0].prod() // merge**2
    assert "<|placeholder|>" * tokens == "<|placeholder|>" * stored[..., 0].numel()
    item = {"feature": stored, "video_grid_thw": grid, "video_sample_fps": meta["video_sample_fps"]}
    batch = default_collate([item])
    assert batch["video_grid_thw"][0].dtype == torch.int64 and batch["video_grid_thw"][0].shape == (1, 3)
    t, h, w = batch["video_grid_thw"][0][0].tolist()
    assert (t, h // merge, w // merge) == tuple(batch["feature"][0].shape[:3])


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
    meta = {  # the authors' types: tensors after their collate, no video_time/num_frames
        "vid": "b",
        "video_sample_fps": 4 / 15 * 4.0,
        "frame_time": torch.tensor([0.0], dtype=torch.float64),
        "video_grid_thw": torch.tensor([[2, 6, 10]], dtype=torch.int64),
    }
    _authors_files(d, "b", merged, meta)
    video, text, facts = qwen.encode(clips[2], task)
    assert video.grid == (2, 3, 5) and video.extra["video_grid_thw"].tolist() == [[2, 6, 10]]
    assert torch.equal(video.features, merged.float().reshape(30, dim)) and facts["frames"] == 4
    assert text is None and facts["video_seconds"] == 3.75  # 4 frames / video_sample_fps
    for grid in ([2, 6, 10], [[2, 6, 10]]):  # our older files wrote a list
        _authors_files(d, "b", merged, {**meta, "video_grid_thw": grid, "video_time": 3.5})
        assert qwen.encode(clips[2], task)[2]["video_seconds"] == 3.5
    _authors_files(d, "b", merged, {**meta, "video_grid_thw": torch.tensor([[2, 6, 12]])})
    with pytest.raises(FeatureMismatchError, match=r"video_grid_thw \[\[2, 6, 12\]\]"):
        qwen.encode(clips[2], task)
    _authors_files(d, "b", merged, meta)
    answers = _run(qwen, {0: clips[2]}, task)  # the model runs on them (prefill with M-RoPE over the grid)
    assert qwen.stats.records[0]["error"] is None and qwen.stats.records[0]["visual_tokens"] == 30
    assert isinstance(answers[0], str)


def test_fastvid_from_features_falls_back_to_its_stand_in_and_says_so(tiny_checkpoints, clips, tmp_path):
    """Stored features hold no vision scores: FastVID runs on its stand-in saliency, recorded per answer."""
    ckpt, cls = tiny_checkpoints("qwen2_vl"), CLASSES["qwen2_vl"]
    root, one = str(tmp_path / "datasets"), dict(list(clips.items())[:1])
    ext = cls(pretrained=ckpt, method="none", features=root, features_mode="extract", stats_dir=str(tmp_path))
    _run(ext, one)
    from_feats = cls(
        pretrained=ckpt, method="fastvid", budget=30, features=root, stats_dir=str(tmp_path / "f")
    )
    from_video = cls(pretrained=ckpt, method="fastvid", budget=30, stats_dir=str(tmp_path / "v"))
    assert from_feats.vision_attention is False and from_video.vision_attention is True
    _run(from_feats, one)
    _run(from_video, one)
    (feat_row,), (video_row,) = from_feats.stats.records, from_video.stats.records
    assert feat_row["error"] is None and feat_row["visual_tokens_kept"] > 0
    assert feat_row["params"]["saliency"] == "stand_in_frame_mean_dot"
    assert video_row["params"]["saliency"] == "vision_frame_query"
