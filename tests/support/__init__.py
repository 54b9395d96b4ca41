"""Helpers shared by the unit and integration tests, each written once."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # the repository root
