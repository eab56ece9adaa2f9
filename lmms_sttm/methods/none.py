"""``method=none``: the unreduced model (no stages; every visual token enters the LLM)."""

from __future__ import annotations

from lmms_sttm.methods.spec import MethodSpec

SPEC = MethodSpec(name="none", build=None, stages=(), reference="the unreduced model")
