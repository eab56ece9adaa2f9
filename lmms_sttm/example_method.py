"""The example out-of-tree method (``examples/l2keep``) installed as a package, for the demo and tests.

``install_example(target)`` pip-installs the example into ``target`` (``--target``, no
dependencies, no build isolation: setuptools comes from the locked environment) so that, with
``target`` on ``PYTHONPATH``, its entry point in group ``lmms_sttm.methods`` makes ``method=l2keep``
available exactly as a package from PyPI would. Nothing is installed into the locked venv.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "l2keep"
NAME = "l2keep"


def install_example(target: Path) -> Path:
    """Installs ``examples/l2keep`` into ``target`` (once; reinstalled when missing); returns ``target``."""
    target = Path(target)
    if any(target.glob("lmms_sttm_l2keep-*.dist-info")):
        return target
    if not EXAMPLE.is_dir():
        raise FileNotFoundError(
            f"the example method's source is not at {EXAMPLE} (a checkout of lmms_sttm has it)"
        )
    with tempfile.TemporaryDirectory() as tmp:  # the build writes next to the source: not into the checkout
        source = shutil.copytree(EXAMPLE, Path(tmp) / EXAMPLE.name)
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps"]
        cmd += ["--no-build-isolation", "--target", str(target), str(source)]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
    return target
