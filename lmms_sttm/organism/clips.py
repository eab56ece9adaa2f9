"""Procedural needle clips and VNBench-style questions for the model organism.

A clip is ``NUM_FRAMES`` frames at 1 fps (so the LLaVA protocol samples every frame): a smooth,
nearly grey two-colour background that changes at one or two scene cuts, two dull-coloured squares moving
along random straight paths (distractor motion), and one or more "needle" frames showing one of six synthetic
"objects" (:data:`COLOURS`: a name, which is one token of the tiny tokenizer, and the solid colour
its frame is painted, with a fine 4-pixel checker pattern). Three question families, four options each:

- ``ret_insert1`` (retrieval): one needle; "what object does the inserted frame show?"
- ``ord_insert1`` (ordering): two needles of different objects; "which object appears first?"
- ``cnt_insert1`` (counting): 1-4 needles of one object, at least two frames apart; "how many times?"

Everything is a deterministic function of a ``numpy`` generator.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

NUM_FRAMES = 16
FPS = 1.0
SIZE = 112
COLOURS: dict[str, tuple[int, int, int]] = {  # needle name -> its frame's colour (names: one token each)
    "red": (220, 30, 30),
    "ball": (30, 200, 40),
    "dog": (30, 60, 220),
    "city": (230, 220, 40),
    "table": (210, 40, 200),
    "kitchen": (40, 210, 210),
}
FAMILIES = ("ret_insert1", "ord_insert1", "cnt_insert1")
QUESTIONS = {
    "ret_insert1": "What object does the inserted frame show?",
    "ord_insert1": "Which object appears first?",
    "cnt_insert1": "How many times does the object appear?",
}
COUNTS = ("1", "2", "3", "4")


@dataclass(frozen=True)
class Clip:
    """What a clip shows: ``needles`` = ``((frame, colour), ...)`` in time order, scene ``cuts``
    (first frame of each new scene), ``seed`` the rest (backgrounds, moving squares)."""

    seed: int
    needles: tuple[tuple[int, str], ...]
    cuts: tuple[int, ...] = field(default=())
    num_frames: int = NUM_FRAMES


@dataclass(frozen=True)
class Question:
    """One family's question on a clip: ``options`` (4 texts, answer first before any reordering)."""

    family: str
    answer: str
    options: tuple[str, ...]


def needle_frames(rng: np.random.Generator, k: int, n: int = NUM_FRAMES) -> list[int]:
    """``k`` sorted frame indices in 1..n-2, pairwise at least 2 apart (never adjacent)."""
    if n - 2 < 2 * k - 1:
        raise ValueError(f"{k} needles two frames apart do not fit in {n} frames")
    while True:
        picks = sorted(rng.choice(np.arange(1, n - 1), size=k, replace=False).tolist())
        if all(b - a >= 2 for a, b in zip(picks, picks[1:], strict=False)):
            return picks


def sample_clip(rng: np.random.Generator, family: str, n: int = NUM_FRAMES) -> tuple[Clip, Question]:
    """An ``n``-frame clip for ``family`` and its question (options: the answer first, then three
    distractors)."""
    names = sorted(COLOURS)
    seed = int(rng.integers(0, 2**31 - 1))
    cuts = tuple(sorted(rng.choice(np.arange(1, n - 1), size=int(rng.integers(1, 3)), replace=False)))
    if family == "ret_insert1":
        colour = str(rng.choice(names))
        needles = ((needle_frames(rng, 1, n)[0], colour),)
        others = [c for c in names if c != colour]
        options = (colour, *rng.choice(others, 3, replace=False).tolist())
        answer = colour
    elif family == "ord_insert1":
        first, second = rng.choice(names, 2, replace=False).tolist()
        a, b = needle_frames(rng, 2, n)
        needles = ((a, first), (b, second))
        others = [c for c in names if c not in (first, second)]
        options = (first, second, *rng.choice(others, 2, replace=False).tolist())
        answer = first
    elif family == "cnt_insert1":
        k = int(rng.integers(1, min(4, (n - 1) // 2) + 1))  # needles two frames apart must fit
        colour = str(rng.choice(names))
        needles = tuple((f, colour) for f in needle_frames(rng, k, n))
        answer = str(k)
        options = (answer, *[c for c in COUNTS if c != answer])
    else:
        raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")
    return Clip(seed, needles, tuple(int(c) for c in cuts), n), Question(family, answer, tuple(options))


def _background(rng: np.random.Generator) -> np.ndarray:
    """A smooth two-colour gradient ``[SIZE, SIZE, 3]`` float32 in 0..255 (random direction)."""
    a, b = rng.uniform(40, 215, size=(2, 3)).astype(np.float32)
    a, b = (0.15 * x + 0.85 * x.mean() for x in (a, b))  # near grey: the needles' colours stand out
    ys = np.linspace(0.0, 1.0, SIZE, dtype=np.float32)[:, None, None]
    xs = np.linspace(0.0, 1.0, SIZE, dtype=np.float32)[None, :, None]
    u, v = rng.uniform(0.2, 1.0, size=2)
    mix = (u * ys + v * xs) / (u + v)
    return a * (1 - mix) + b * mix


def render(clip: Clip) -> np.ndarray:
    """The clip's frames ``[num_frames, SIZE, SIZE, 3]`` uint8."""
    rng = np.random.default_rng(clip.seed)
    scenes = [_background(rng) for _ in range(len(clip.cuts) + 1)]
    side = SIZE // 5
    paths = []
    for _ in range(2):
        colour = rng.uniform(0, 255, size=3).astype(np.float32)
        colour = 0.4 * colour + 0.6 * colour.mean()
        start, end = rng.uniform(0, SIZE - side, size=(2, 2))
        paths.append((colour, start, end))
    needles = dict(clip.needles)
    block = 4  # half a tower patch: every patch of a needle frame holds a fine checker (texture)
    checker = ((np.arange(SIZE)[:, None] // block + np.arange(SIZE)[None, :] // block) % 2).astype(bool)
    n = clip.num_frames
    frames = np.empty((n, SIZE, SIZE, 3), dtype=np.uint8)
    for i in range(n):
        scene = scenes[sum(i >= c for c in clip.cuts)]
        frame = scene.copy()
        t = i / (n - 1)
        for colour, start, end in paths:
            y, x = (start + t * (end - start)).astype(int)
            frame[y : y + side, x : x + side] = colour
        if i in needles:
            frame[:] = COLOURS[needles[i]]
            frame[checker] *= 0.7
        frames[i] = np.clip(frame, 0, 255).astype(np.uint8)
    return frames


def rotations(question: Question) -> list[list[str]]:
    """VNBench's four tries: the option list rotated so that the answer is A, B, C, then D."""
    base = list(question.options)
    return [base[-t:] + base[:-t] if t else list(base) for t in range(4)]


def option_texts(options: list[str]) -> list[str]:
    """``["A. red.", ...]`` (VNBench's reformatted options)."""
    return [f"{letter}. {text}." for letter, text in zip("ABCD", options, strict=True)]
