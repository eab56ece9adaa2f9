"""Ships ``lmms_sttm.pth`` next to the package in site-packages (all metadata is in pyproject.toml).

The file holds one line, ``import lmms_sttm._startup``, which puts the task-folder import hook in
place at interpreter start-up (see ``lmms_sttm/_task_path.py``): it is how ``lmms-eval tasks list``
and a plain ``TaskManager()`` find our tasks, since neither loads lmms-eval's model entry points.
"""

from __future__ import annotations

import os

from setuptools import setup
from setuptools.command.build_py import build_py

PTH_NAME = "lmms_sttm.pth"
PTH_LINE = "import lmms_sttm._startup\n"


class BuildPyWithStartup(build_py):
    """``build_py`` that also writes ``lmms_sttm.pth`` at the root of what gets installed."""

    def run(self) -> None:
        super().run()
        # A regular wheel installs build_lib; an editable one (setuptools >= 64) installs only what is
        # written into the install directory, which editable_wheel points at its unpacked wheel.
        root = self.get_finalized_command("install").install_lib if self.editable_mode else self.build_lib
        os.makedirs(root, exist_ok=True)
        with open(os.path.join(root, PTH_NAME), "w", encoding="utf-8") as f:
            f.write(PTH_LINE)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = super().get_outputs(include_bytecode)
        return outputs if self.editable_mode else [*outputs, os.path.join(self.build_lib, PTH_NAME)]


setup(cmdclass={"build_py": BuildPyWithStartup})
