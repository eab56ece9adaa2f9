"""ChatML chat templates (Jinja) for the LLaVA and Qwen2-VL families.

Both follow the published templates' structure: a default system turn "You are a helpful
assistant." when the conversation does not start with one, ``<|im_start|>ROLE\\n ... <|im_end|>\\n``
turns, and ``<|im_start|>assistant\\n`` as the generation prompt. Message content is either a
string or a list of ``{"type": "text" | "image" | "video", ...}`` items rendered in order:

- LLaVA (HF ``LlavaOnevisionProcessor``): video -> ``<video>\\n``, image -> ``<image>\\n``; this is the
  LLaVA-NeXT ``qwen_2`` conversation layout (``<image>\\n`` then the text in the user turn).
- Qwen2-VL / Qwen2.5-VL: video -> ``<|vision_start|><|video_pad|><|vision_end|>``, image ->
  ``<|vision_start|><|image_pad|><|vision_end|>``.

The processors expand the single placeholder into one token per visual feature.
"""

from __future__ import annotations

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."


def _chatml_template(image_markup: str, video_markup: str) -> str:
    """A ChatML template whose image/video items render as the given (Jinja-quoted) strings."""
    return (
        "{%- for message in messages -%}"
        "{%- if loop.first and message['role'] != 'system' -%}"
        "{{ '<|im_start|>system\\n" + DEFAULT_SYSTEM_PROMPT + "<|im_end|>\\n' }}"
        "{%- endif -%}"
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
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}"
        "{{ '<|im_start|>assistant\\n' }}"
        "{%- endif -%}"
    )


LLAVA_CHAT_TEMPLATE = _chatml_template(image_markup="<image>\\n", video_markup="<video>\\n")
QWEN2_VL_CHAT_TEMPLATE = _chatml_template(
    image_markup="<|vision_start|><|image_pad|><|vision_end|>",
    video_markup="<|vision_start|><|video_pad|><|vision_end|>",
)
# Text-only ChatML (what a Qwen2 LM tokenizer_config.json carries).
TEXT_CHAT_TEMPLATE = _chatml_template(image_markup="", video_markup="")
