"""Option values shared by several built-in baselines (validated in their settings classes)."""

from __future__ import annotations

from lmms_sttm.methods.spec import check_choice

#: the order kept tokens enter the LLM: the authors' (ToMe's similarity order, DyCoke's topk
#: order) or raster order
TOKEN_ORDERS = ("authors", "raster")


def check_fraction(name: str, value) -> None:
    """``value`` is None (set by ``budget=``) or a number in [0, 1]."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"model_args {name}={value!r} must be a fraction in [0, 1]")


def check_token_order(value) -> None:
    check_choice("token_order", value, TOKEN_ORDERS)
