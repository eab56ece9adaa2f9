"""lmms_sttm: training-free visual-token reduction for video LLMs in lmms-eval."""

__version__ = "0.1.0"
