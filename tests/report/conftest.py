"""Fixtures of the report tests: the two fixture runs and a report built from them."""

from __future__ import annotations

import pytest

from tests.report.fixture_runs import two_runs


@pytest.fixture
def runs_root(tmp_path):
    """``tmp/runs/none`` and ``tmp/runs/sttm`` (see :func:`tests.report.fixture_runs.two_runs`)."""
    two_runs(tmp_path / "runs")
    return tmp_path / "runs"


@pytest.fixture(scope="module")
def built_report(tmp_path_factory):
    """The report of the two fixture runs with breakdowns, built once per module: (out dir, files)."""
    from lmms_sttm.report import build_report

    root = tmp_path_factory.mktemp("report")
    none_dir, sttm_dir = two_runs(root / "runs")
    out = root / "out"
    files = build_report([none_dir, sttm_dir], out, breakdowns=True)
    return out, files
