"""Prompts of the STTM protocol (the authors' evaluation scripts), split into a video prefix and a question.

The prefix holds everything that depends only on the video (system turn, the video placeholder,
LLaVA's optional time instruction); the question part holds the task's text and the assistant
turn opener. Because attention is causal, a prefix prefilled once serves every question on the
same video. The task supplies the MCQ text (``ctx``); these functions add only the chat framing.
"""

from __future__ import annotations

from dataclasses import dataclass

SYSTEM = "You are a helpful assistant."


@dataclass(frozen=True)
class Prompt:
    """``prefix + question`` is the full prompt text (placeholders not yet expanded)."""

    prefix: str
    question: str

    @property
    def text(self) -> str:
        return self.prefix + self.question


def time_instruction(video_seconds: float, frame_seconds: list[float]) -> str:
    """LLaVA-Video's time instruction for the sampled frames (times in seconds, 2 decimals)."""
    stamps = ",".join(f"{s:.2f}s" for s in frame_seconds)
    return (
        f"The video lasts for {video_seconds:.2f} seconds, and {len(frame_seconds)} frames are uniformly "
        f"sampled from it. These frames are located at {stamps}. Please answer the following questions "
        "related to this video."
    )


def llava_prompt(ctx: str, video_token: str, time_text: str | None = None) -> Prompt:
    """ChatML (``qwen_2``) prompt of the LLaVA models: ``<video>\\n[time instruction\\n]ctx``."""
    prefix = f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{video_token}\n"
    if time_text:
        prefix += time_text + "\n"
    return Prompt(prefix, f"{ctx}<|im_end|>\n<|im_start|>assistant\n")


def qwen3_vl_prompt(ctx: str) -> Prompt:
    """Qwen3-VL chat prompt with content ``[video, text]`` (its template has no default system turn);
    the video wrapper is written out per temporal patch (``video_blocks``)."""
    prefix = "<|im_start|>user\n<|vision_start|><|video_pad|><|vision_end|>"
    return Prompt(prefix, f"{ctx}<|im_end|>\n<|im_start|>assistant\n")


def qwen3_5_prompt(ctx: str, thinking: bool = True) -> Prompt:
    """Qwen3.5 / Qwen3.6 chat prompt as lmms-eval's ``qwen3_5`` wrapper builds it: a system turn
    (``system_prompt``'s default), content ``[video, text]``, then the assistant opener of the
    model's template: ``<think>\\n`` with thinking on (the model reasons, closes ``</think>``, then
    answers), an empty closed block ``<think>\\n\\n</think>\\n\\n`` with it off."""
    prefix = (
        f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n"
        "<|vision_start|><|video_pad|><|vision_end|>"
    )
    opener = "<think>\n" if thinking else "<think>\n\n</think>\n\n"
    return Prompt(prefix, f"{ctx}<|im_end|>\n<|im_start|>assistant\n{opener}")


def internvl_prompt(ctx: str) -> Prompt:
    """InternVL3.5 (HF) chat prompt: ``<video>\\n`` then the text (no default system turn); ``<video>``
    becomes one ``Frame{i}: <img>...</img>`` line per frame (``video_blocks``)."""
    return Prompt("<|im_start|>user\n<video>\n", f"{ctx}<|im_end|>\n<|im_start|>assistant\n")


def qwen_prompt(ctx: str) -> Prompt:
    """Qwen2-VL chat prompt with content ``[video, text]`` and the default system turn."""
    prefix = (
        f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n"
        "<|vision_start|><|video_pad|><|vision_end|>"
    )
    return Prompt(prefix, f"{ctx}<|im_end|>\n<|im_start|>assistant\n")
