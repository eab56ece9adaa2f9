"""``qwen3_vl_sttm`` and ``internvl3_5_sttm``: the frame-block families with token reduction.

Qwen3-VL (dense and MoE checkpoints alike, chosen by their config) writes a video as one block per
temporal patch and adds DeepStack features after its first LLM layers; survivors keep their own
M-RoPE ids. InternVL3.5 writes one block per frame and renumbers 1-D positions like LLaVA. The
paper tuned no thresholds for either: use ``budget_mode=exact,retention=R``, explicit
``tau_s``/``tau_t``, or thresholds from ``python -m lmms_sttm.calibrate``.
"""

from lmms_sttm.models.base import SttmVideoModel


class Qwen3VLSttm(SttmVideoModel):
    family = "qwen3_vl"
    paper_model = "qwen3_vl_8b"
    model_name = "qwen3_vl_sttm"


class InternVL35Sttm(SttmVideoModel):
    family = "internvl"
    paper_model = "internvl3_5_8b"
    model_name = "internvl3_5_sttm"
