"""Stages that read the frames' timestamps get the seconds of each grid frame."""

from __future__ import annotations

import pytest
import torch

from lmms_sttm.data.synthetic import ClipSpec, ensure_clip
from lmms_sttm.merging.reduction import Reduction
from lmms_sttm.models.llava_video_sttm import LlavaVideoSttm
from lmms_sttm.models.qwen2_vl_sttm import Qwen2VLSttm
from lmms_sttm.models.video_inputs import grid_seconds
from lmms_sttm.video import load_video


class Seen:
    """A reducer keeping every token that remembers the timestamps its stage got."""

    def __init__(self) -> None:
        self.stamps = []

    def start(self, grid, num_layers, layer):
        outer = self

        class Run:
            done = False

            def next_stage(self):
                from lmms_sttm.merging.stage import Stage

                return None if self.done else Stage(layer)

            def run(self, hidden, g, context):
                self.done = True
                outer.stamps.append(context.timestamps)
                t, h, w = g
                return Reduction.identity(hidden.reshape(t, h, w, -1))

        return Run()


def test_grid_seconds():
    assert grid_seconds([0.0, 0.5, 1.0, 1.5], 2) == (0.0, 1.0)
    assert grid_seconds([0.25, 0.75], 1) == (0.25, 0.75)


@pytest.mark.parametrize(
    ("cls", "arch", "per_grid"), [(LlavaVideoSttm, "llava_video", 1), (Qwen2VLSttm, "qwen2_vl", 2)]
)
def test_encoded_videos_carry_each_grid_frames_seconds_to_the_stages(
    cls, arch, per_grid, tiny_checkpoints, tmp_path
):
    clip = str(ensure_clip(ClipSpec(num_frames=24, height=96, width=96, fps=4, seed=1), tmp_path / "a.mp4"))
    model = cls(pretrained=tiny_checkpoints(arch), method="none", stats_dir=str(tmp_path / "s"))
    video, _, facts = model.encode(clip, "probe_sttm")
    fps, cap = model.frames_for("probe_sttm")
    _, idx, info = load_video(clip, target_fps=fps, max_frames=cap)
    if len(idx) % per_grid:  # Qwen pads an odd frame count with the last frame
        idx = [*idx, idx[-1]]
    expected = tuple(i / info.fps for i in idx[::per_grid])
    assert video.timestamps == pytest.approx(expected) and len(expected) == video.grid[0]
    seen = Seen()
    from lmms_sttm.engine import session

    inputs, _ = model.prefix_inputs(model.prompt("Q?", None).prefix, video)
    with torch.no_grad():
        session.prefill(model.engine, inputs, seen, video.grid, timestamps=video.timestamps)
    assert seen.stamps == [video.timestamps]
