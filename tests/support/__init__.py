"""Helpers shared by the unit and integration tests, each written once."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # the repository root


def in_ci() -> bool:
    """Whether this is a CI run (``CI=true``, as CI services set it): there, every test must run."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
