"""Shared pieces of the ``*_sttm`` benchmark tasks: the STTM prompt, answer parser, metrics and task glue.

Task folders import these by absolute import (``lmms_sttm.tasks.common...``); this folder holds
no task YAML of its own except the shared template that task YAMLs ``include``.
"""
