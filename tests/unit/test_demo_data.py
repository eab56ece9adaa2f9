"""The demo's VNBench-format data: valid for the vnbench_sttm task, answerable from the pixels."""

from __future__ import annotations

import json

from lmms_sttm.data.demo_vnbench import demo_records, write_demo_vnbench
from lmms_sttm.models.oracle import needle_colour
from lmms_sttm.video import load_video


def test_demo_vnbench_layout_and_answers(tmp_path):
    ann = write_demo_vnbench(tmp_path, num_videos=3)
    records = json.loads(ann.read_text())
    assert records == demo_records(3) and len(records) == 12
    assert [r["answer"] for r in records[:4]] == ["A", "B", "C", "D"]  # the answer rotates over the tries
    for r in records:
        path = tmp_path / "vnbench" / "videos" / f"{r['videoID']}.mp4"
        frames, _, info = load_video(str(path), target_fps=1e6, max_frames=64)
        assert info.duration == r["video_second"]
        answer_text = r["options"]["ABCD".index(r["answer"])][3:].rstrip(".")
        assert needle_colour(frames) == answer_text
