"""Helpers shared by the unit and integration tests, each written once.

This module imports only the standard library: ``.ci/test`` asks it what to install before anything
else is installed.
"""

import os
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # the repository root

# The programs the integration tests run, and the Debian package that installs each.
DEBIAN_PACKAGES = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
    "docker-compose": "docker-compose",
}


def in_ci() -> bool:
    """Whether this is a CI run (``CI=true``, as CI services set it): there, every test must run."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def missing_packages() -> list[str]:
    """The Debian packages of the programs that are not on PATH (``prometheus-alertmanager`` installs
    ``alertmanager`` on some releases: either name will do)."""
    names = {"prometheus-alertmanager": ("prometheus-alertmanager", "alertmanager")}
    missing = {
        package
        for program, package in DEBIAN_PACKAGES.items()
        if not any(shutil.which(n) for n in names.get(program, (program,)))
    }
    return sorted(missing)


if __name__ == "__main__":
    print(" ".join(missing_packages()))
