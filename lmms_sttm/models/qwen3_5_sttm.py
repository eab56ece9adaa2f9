"""``qwen3_5_sttm``: Qwen3.5 and Qwen3.6 (``Qwen/Qwen3.5-4B``, ``-27B``, ``-35B-A3B``,
``Qwen/Qwen3.6-35B-A3B``; dense and MoE chosen by the checkpoint's config) with token reduction.

The hybrid models: three of every four decoder layers are Gated DeltaNet (linear attention with a
conv state and a recurrent state), one full attention; the video is laid out as Qwen3-VL lays it
out (one timestamped block per temporal patch, interleaved M-RoPE, survivors keep their ids), with
no DeepStack. Methods run as on Qwen3-VL (``methods/spec.METHOD_FAMILY_OF``); the engine merges
at layer k of either kind, reads query-aware attention from the nearest full-attention layer at or
after k, and reuses a question's prefix from a snapshot of the recurrent states.

Protocol: lmms-eval 0.7.3's own ``qwen3_5`` wrapper (its ``Qwen3_VL`` base with the Qwen3.5
defaults ``min_pixels=64*32*32``, ``max_pixels=128*32*32``, ``total_pixels=224*1024*32*32``,
``max_num_frames=768``, ``enable_thinking=True``) and the model card:

- frames: 2 fps, at least 4 and at most 768, an even count, taken as qwen-vl-utils takes them
  (lmms-eval passes ``total_pixels`` and so ``max_frames``, not ``nframes``, and qwen-vl-utils
  samples at its default 2 fps): ``linspace(0, N-1, n)`` rounded (``lmms_sttm.video
  .qwen_vl_utils_indices``); the same indices, and with decord the same frames.
- pixels: per frame, at least 64 and at most ``min(768, 224*1024 / frames * 2)`` tokens of
  32 x 32 px (``models/video_blocks.qwen3_5_frame_size``). ``max_pixels=128*32*32`` is not a video
  budget in lmms-eval either: with ``total_pixels`` set it reaches images only.
- prompt: system turn "You are a helpful assistant.", user content ``[video, text]``, the
  template's thinking opener (``models/prompts.qwen3_5_prompt``).
- thinking: ``enable_thinking`` (default true, as lmms-eval); the answer follows ``</think>``
  (``models/thinking.py``: found on token ids, stop strings applied to the answer only), with
  ``max_thinking_tokens`` (default 1024) on top of the task's answer budget; lmms-eval instead
  lets the task's ``max_new_tokens`` (e.g. 32) cover the reasoning too, so most thinking answers
  would be cut before ``</think>`` and come back empty.
- decoding: greedy as the task asks (lmms-eval's ``qwen3_5`` defaults, ``temperature=0.7``,
  ``top_p=0.8``, ``top_k=20``, apply only to tasks that set no ``temperature``; every ``*_sttm``
  task sets 0). A task asking for ``do_sample`` gets seeded sampling as on every model here.

``features=`` (two-stage runs) is refused, as for Qwen3-VL: the stored features would need the
block layout. No STTM thresholds were published for these models: use ``budget_mode=exact``,
``tau_s``/``tau_t`` or ``python -m lmms_sttm.calibrate``.
"""

from lmms_sttm.models.base import SttmVideoModel


class Qwen35Sttm(SttmVideoModel):
    family = "qwen3_5"
    paper_model = "qwen3_5"
    model_name = "qwen3_5_sttm"
