"""``python -m tests.e2e.many_runs RUNS.json``: several lmms-eval runs in one process, one after the other.

``RUNS.json`` holds a list of lmms-eval argument lists (``--model ... --output_path DIR ...``), each
run as ``python -m lmms_eval ARGS`` would run it (``cli_evaluate`` on those ``sys.argv``). One
process pays lmms-eval's start-up (imports, task registry) once instead of once per run: the
e2e tests run every method this way. A failing run raises and stops the rest (the tests read
each run's results file, so a missing one names the run).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from lmms_eval.__main__ import cli_evaluate

if __name__ == "__main__":
    for args in json.loads(Path(sys.argv[1]).read_text()):
        sys.argv = ["lmms_eval", *args]
        cli_evaluate()
