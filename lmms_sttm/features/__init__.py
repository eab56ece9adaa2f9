"""Two-stage evaluation: extract visual features once, then evaluate many settings from them.

Layout and file formats follow the STTM authors' pipeline (their feature-extraction scripts):
``{root}/{bench}/preprocess_data/{ckpt}/F-{cap}_fps-{fps}/features/{vid}.pt`` (a tensor) and
``.../metadata/{vid}.pkl`` (a dict of plain values and CPU tensors). See :mod:`.layout`,
:mod:`.store`, :mod:`.extract`, :mod:`.read`, :mod:`.inventory`. This module imports nothing
heavy (``base.py`` imports :mod:`.errors` at start-up).
"""
