"""``llava_video_sttm``: LLaVA-Video (7B Video-Only as in the paper, 7B, 72B) with token reduction.

Loads the lmms-lab LLaVA-NeXT checkpoints (converted on load) or HF-format LLaVA-OneVision-style
ones. The 72B checkpoint (hidden size 8192) merges before layer 0, as in the paper.
"""

from lmms_sttm.models.base import SttmVideoModel


class LlavaVideoSttm(SttmVideoModel):
    family = "llava"
    paper_model = "llava_video_7b"
    model_name = "llava_video_sttm"
