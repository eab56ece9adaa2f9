"""ChatML chat templates (Jinja) for the LLaVA, Qwen2-VL, Qwen3-VL, Qwen3.5 and InternVL families.

All follow the published templates' structure: ``<|im_start|>ROLE\\n ... <|im_end|>\\n`` turns and
``<|im_start|>assistant\\n`` as the generation prompt. LLaVA and Qwen2-VL add a default system turn
"You are a helpful assistant." when the conversation does not start with one; Qwen3-VL-Instruct
and InternVL (HF) do not (a system turn appears only when the messages start with one). Message
content is either a string or a list of ``{"type": "text" | "image" | "video", ...}`` items
rendered in order:

- LLaVA (HF ``LlavaOnevisionProcessor``): video -> ``<video>\\n``, image -> ``<image>\\n``; this is the
  LLaVA-NeXT ``qwen_2`` conversation layout (``<image>\\n`` then the text in the user turn).
- Qwen2-VL / Qwen2.5-VL / Qwen3-VL: video -> ``<|vision_start|><|video_pad|><|vision_end|>``, image
  -> ``<|vision_start|><|image_pad|><|vision_end|>`` (Qwen3-VL's processor replaces the video
  wrapper by one ``<T seconds><|vision_start|>...<|vision_end|>`` block per temporal patch).
- InternVL (HF ``InternVLProcessor``): video -> ``<video>\\n``, image -> ``<IMG_CONTEXT>\\n``; the
  processor writes a video as ``Frame1: <img>...</img>\\nFrame2: ...`` (one line per frame).

The processors expand the single placeholder into one token per visual feature.
"""

from __future__ import annotations

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."


_GENERATION_PROMPT = "{{ '<|im_start|>assistant\\n' }}"


def _chatml_template(
    image_markup: str,
    video_markup: str,
    default_system: str | None = DEFAULT_SYSTEM_PROMPT,
    generation_prompt: str = _GENERATION_PROMPT,
) -> str:
    """A ChatML template whose image/video items render as the given (Jinja-quoted) strings.

    ``default_system``: the system turn added when the messages do not start with one (None: none).
    ``generation_prompt``: the Jinja rendered for ``add_generation_prompt`` (the assistant opener).
    """
    system = (
        "{%- if loop.first and message['role'] != 'system' -%}"
        "{{ '<|im_start|>system\\n" + default_system + "<|im_end|>\\n' }}"
        "{%- endif -%}"
        if default_system is not None
        else ""
    )
    turn = (
        "{{ '<|im_start|>' + message['role'] + '\\n' }}"
        "{%- if message['content'] is string -%}"
        "{{ message['content'] }}"
        "{%- else -%}"
        "{%- for item in message['content'] -%}"
        "{%- if item['type'] == 'video' or 'video' in item -%}"
        "{{ '" + video_markup + "' }}"
        "{%- elif item['type'] == 'image' or 'image' in item or 'image_url' in item -%}"
        "{{ '" + image_markup + "' }}"
        "{%- elif 'text' in item -%}"
        "{{ item['text'] }}"
        "{%- endif -%}"
        "{%- endfor -%}"
        "{%- endif -%}"
        "{{ '<|im_end|>\\n' }}"
    )
    return (
        "{%- for message in messages -%}" + system + turn + "{%- endfor -%}"
        "{%- if add_generation_prompt -%}" + generation_prompt + "{%- endif -%}"
    )


LLAVA_CHAT_TEMPLATE = _chatml_template(image_markup="<image>\\n", video_markup="<video>\\n")
QWEN2_VL_CHAT_TEMPLATE = _chatml_template(
    image_markup="<|vision_start|><|image_pad|><|vision_end|>",
    video_markup="<|vision_start|><|video_pad|><|vision_end|>",
)
# Qwen3-VL-Instruct: Qwen2-VL's markup, no default system turn.
QWEN3_VL_CHAT_TEMPLATE = _chatml_template(
    image_markup="<|vision_start|><|image_pad|><|vision_end|>",
    video_markup="<|vision_start|><|video_pad|><|vision_end|>",
    default_system=None,
)
# Qwen3.5 / Qwen3.6: Qwen3-VL's markup, no default system turn, and a thinking switch. The assistant
# opener is followed by "<think>" and a newline (the model writes its reasoning, "</think>", then the
# answer) unless ``enable_thinking=False`` is passed, which writes an empty, closed block instead:
# "<think>", two newlines, "</think>", two newlines (the model answers at once).
QWEN3_5_CHAT_TEMPLATE = _chatml_template(
    image_markup="<|vision_start|><|image_pad|><|vision_end|>",
    video_markup="<|vision_start|><|video_pad|><|vision_end|>",
    default_system=None,
    generation_prompt=(
        _GENERATION_PROMPT + "{%- if enable_thinking is defined and not enable_thinking -%}"
        "{{ '<think>\\n\\n</think>\\n\\n' }}"
        "{%- else -%}"
        "{{ '<think>\\n' }}"
        "{%- endif -%}"
    ),
)
# InternVL (HF): the processor's video token ``<video>`` and image context token, no default system turn.
INTERNVL_CHAT_TEMPLATE = _chatml_template(
    image_markup="<IMG_CONTEXT>\\n", video_markup="<video>\\n", default_system=None
)
# Text-only ChatML (what a Qwen2 LM tokenizer_config.json carries).
TEXT_CHAT_TEMPLATE = _chatml_template(image_markup="", video_markup="")
