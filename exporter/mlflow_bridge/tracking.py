"""Where the bridge writes: the tracking URI (config, ``$MLFLOW_TRACKING_URI``, then a local SQLite store)
and the version tagged on runs."""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Mapping
from pathlib import Path

from .._version import __version__

DEFAULT_DB = "mlflow.db"


def resolve_tracking_uri(configured: str | None, environ: Mapping[str, str] | None = None) -> str:
    """Config, then ``$MLFLOW_TRACKING_URI``, then ``sqlite:///mlflow.db`` in the working directory."""
    env = os.environ if environ is None else environ
    uri = configured or env.get("MLFLOW_TRACKING_URI")
    # Absolute, so that a later chdir of the app does not move the default store.
    return uri or "sqlite:///" + str(Path(DEFAULT_DB).resolve())


def version() -> str:
    try:
        return importlib.metadata.version("llm-exporter")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree
        return __version__
