"""Build hook: the wheel carries the monitoring templates, which live at the top of the repository.

``grafana/``, ``monitoring-templates/`` and ``prometheus.yml`` stay where docker-compose and the tests
use them; at build time they are copied into ``exporter/_templates/`` of the wheel, for
``llm-exporter templates``. An editable install needs no copy: it reads them from the checkout. The list
of files is ``exporter.templates.FILES`` (read without importing the package, whose dependencies the
build environment does not have). Everything else is in ``pyproject.toml``.
"""

from __future__ import annotations

import runpy
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildPyWithTemplates(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        files = runpy.run_path(str(ROOT / "exporter" / "templates.py"))["FILES"]
        target = Path(self.build_lib) / "exporter" / "_templates"
        for name in files:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / name, target / name)


setup(cmdclass={"build_py": BuildPyWithTemplates})
