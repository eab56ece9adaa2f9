"""``llava_onevision_sttm``: LLaVA-OneVision-7B with token reduction (paper thresholds of OV)."""

from lmms_sttm.models.base import SttmVideoModel


class LlavaOnevisionSttm(SttmVideoModel):
    family = "llava"
    paper_model = "llava_onevision_7b"
    model_name = "llava_onevision_sttm"
