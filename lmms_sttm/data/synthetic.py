"""Short synthetic mp4 clips with known content, for tests and the demo.

Every clip is a deterministic function of its :class:`ClipSpec`: a static background (a smooth
colour gradient), a square object moving left to right, an optional scene cut after which the
background changes, and an optional "needle" frame painted with a solid colour from
:data:`NEEDLE_COLOURS` and a checker code. The needle makes a question with a known answer.

Frames are written with PyAV (libx264, yuv420p); sizes are rounded to even numbers.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

NEEDLE_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 200, 40),
    "blue": (30, 60, 220),
    "yellow": (230, 220, 40),
    "magenta": (210, 40, 200),
    "cyan": (40, 210, 210),
}


@dataclass(frozen=True)
class ClipSpec:
    """What a synthetic clip shows.

    Attributes:
        num_frames: 8..64 frames.
        height, width: 64..224 px (even).
        fps: frames per second written into the container.
        seed: seeds the background colours and the object's path.
        cut_at: index of the first frame after a scene cut, or None.
        needle_at: index of the needle frame, or None.
        needle_colour: a key of NEEDLE_COLOURS (used when needle_at is set).
    """

    num_frames: int = 32
    height: int = 112
    width: int = 112
    fps: float = 8.0
    seed: int = 0
    cut_at: int | None = None
    needle_at: int | None = None
    needle_colour: str = "red"

    def __post_init__(self) -> None:
        if not 8 <= self.num_frames <= 64:
            raise ValueError(f"num_frames must be in 8..64, got {self.num_frames}")
        for name in ("height", "width"):
            v = getattr(self, name)
            if not 64 <= v <= 224 or v % 2:
                raise ValueError(f"{name} must be even and in 64..224, got {v}")
        if self.fps <= 0:
            raise ValueError(f"fps must be positive, got {self.fps}")
        for name in ("cut_at", "needle_at"):
            v = getattr(self, name)
            if v is not None and not 0 <= v < self.num_frames:
                raise ValueError(f"{name}={v} is outside 0..{self.num_frames - 1}")
        if self.needle_colour not in NEEDLE_COLOURS:
            raise ValueError(
                f"needle_colour must be one of {sorted(NEEDLE_COLOURS)}, got {self.needle_colour!r}"
            )


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth two-colour gradient ``[h, w, 3]`` float32 in 0..255."""
    a, b = rng.uniform(30, 225, size=(2, 3)).astype(np.float32)
    ys = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    xs = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :, None]
    mix = 0.5 * (ys + xs)
    return a * (1 - mix) + b * mix


def render_frames(spec: ClipSpec) -> np.ndarray:
    """The clip's frames ``[num_frames, height, width, 3]`` uint8 (before video encoding)."""
    rng = np.random.default_rng(spec.seed)
    h, w, n = spec.height, spec.width, spec.num_frames
    scenes = [_background(rng, h, w), _background(rng, h, w)]
    obj_colour = rng.uniform(0, 255, size=3).astype(np.float32)
    side = max(8, h // 5)
    y0 = int(rng.integers(0, h - side))
    frames = np.empty((n, h, w, 3), dtype=np.uint8)
    for i in range(n):
        scene = scenes[1] if spec.cut_at is not None and i >= spec.cut_at else scenes[0]
        frame = scene.copy()
        x0 = int(round((w - side) * i / max(n - 1, 1)))
        frame[y0 : y0 + side, x0 : x0 + side] = obj_colour
        if spec.needle_at == i:
            frame[:] = NEEDLE_COLOURS[spec.needle_colour]
            block = max(8, min(h, w) // 8)
            checker = ((np.arange(h)[:, None] // block + np.arange(w)[None, :] // block) % 2).astype(bool)
            frame[checker] *= 0.6
        frames[i] = np.clip(frame, 0, 255).astype(np.uint8)
    return frames


def write_clip(spec: ClipSpec, path: str | os.PathLike) -> Path:
    """Encode the clip to ``path`` (mp4, h264); written atomically so parallel writers are safe."""
    return write_frames(render_frames(spec), path, spec.fps)


#: libx264 without its assembly (C code only): its assembly kernels gave different streams for the
#: same frames from one call to the next (measured on an AMD EPYC with AVX-512: 2-3 distinct streams in
#: 16 encodes of one organism clip; with ``asm=0`` one stream in 104 encodes of 6 clips), and the C
#: code is the same on every x86 CPU
DETERMINISTIC_X264 = "asm=0"


def write_frames(
    frames: np.ndarray, path: str | os.PathLike, fps: float, x264_params: str | None = None
) -> Path:
    """Encode ``frames`` ``[T, H, W, 3]`` uint8 RGB to ``path`` (h264, yuv420p, crf 18), atomically.

    ``x264_params``: libx264's own options (``"asm=0"``: :data:`DETERMINISTIC_X264`)."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".mp4", dir=path.parent)
    os.close(fd)
    try:
        with av.open(tmp, mode="w") as container:
            stream = container.add_stream("libx264", rate=_fps_fraction(fps))
            stream.width, stream.height = frames.shape[2], frames.shape[1]
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": "18", "preset": "veryfast", "threads": "1"}
            if x264_params:
                stream.options = {**stream.options, "x264-params": x264_params}
            for frame in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _fps_fraction(fps: float):
    from fractions import Fraction

    return Fraction(fps).limit_denominator(1001)


def ensure_clip(spec: ClipSpec, path: str | os.PathLike) -> Path:
    """Write the clip unless ``path`` already holds it (a sidecar JSON records the spec)."""
    path = Path(path)
    meta = path.with_suffix(".json")
    want = json.dumps(asdict(spec), sort_keys=True)
    if path.exists() and meta.exists() and meta.read_text() == want:
        return path
    write_clip(spec, path)
    fd, tmp = tempfile.mkstemp(suffix=".json", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(want)
    os.replace(tmp, meta)
    return path


def default_clip_dir() -> Path:
    """Where tasks write synthetic clips: ``$LMMS_STTM_SYNTHETIC_DIR`` or ``~/.cache/lmms_sttm/synthetic``."""
    env = os.environ.get("LMMS_STTM_SYNTHETIC_DIR")
    return Path(env) if env else Path.home() / ".cache" / "lmms_sttm" / "synthetic"


def needle_task_docs(num_videos: int = 8) -> list[dict]:
    """The ``synthetic_needle_sttm`` task: two option orders of a needle-colour question per clip.

    Each doc carries its clip's spec, so the task can (re)create the video it names.
    """
    colours = sorted(NEEDLE_COLOURS)
    docs = []
    for v in range(num_videos):
        rng = np.random.default_rng(1000 + v)
        n = int(rng.integers(16, 41))
        spec = ClipSpec(
            num_frames=n,
            height=int(rng.choice([64, 96, 112])),
            width=int(rng.choice([96, 112, 160])),
            fps=8.0,
            seed=v,
            cut_at=int(rng.integers(n // 3, 2 * n // 3)) if v % 2 else None,
            needle_at=int(rng.integers(1, n - 1)),
            needle_colour=colours[v % len(colours)],
        )
        distractors = [c for c in colours if c != spec.needle_colour]
        options = [spec.needle_colour, *rng.choice(distractors, size=3, replace=False).tolist()]
        for k in range(2):
            order = np.random.default_rng(10 * v + k).permutation(4)
            opts = [options[i] for i in order]
            docs.append(
                {
                    "question_id": f"needle-{v}-{k}",
                    "video_id": f"clip{v:03d}",
                    "clip": asdict(spec),
                    "task_type": "needle_colour",
                    "question": "What colour is the single solid-coloured frame that appears in the video?",
                    "options": opts,
                    "answer": "ABCD"[opts.index(spec.needle_colour)],
                }
            )
    return docs
