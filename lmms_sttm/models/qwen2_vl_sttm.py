"""``qwen2_vl_sttm`` and ``qwen2_5_vl_sttm``: Qwen2-VL / Qwen2.5-VL with token reduction.

Survivors keep their original 3-D M-RoPE ids. The paper has thresholds for Qwen2-VL-7B only;
Qwen2.5-VL needs explicit ``tau_s``/``tau_t``.
"""

from lmms_sttm.models.base import SttmVideoModel


class Qwen2VLSttm(SttmVideoModel):
    family = "qwen"
    paper_model = "qwen2_vl_7b"
    model_name = "qwen2_vl_sttm"


class Qwen25VLSttm(SttmVideoModel):
    family = "qwen"
    paper_model = "qwen2_5_vl_7b"
    model_name = "qwen2_5_vl_sttm"
