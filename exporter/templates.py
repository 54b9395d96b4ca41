"""``llm-exporter templates [DIR]``: the monitoring templates, byte for byte as the repository has them.

The files live at the top of the repository (``grafana/``, ``monitoring-templates/``, ``prometheus.yml``),
where docker-compose and the tests use them. A wheel carries them in ``exporter/_templates/``, copied
there at build time (``setup.py``); a source checkout, editable installs included, reads them where they
are. So git never holds a second copy to keep in step.

This module imports nothing but the standard library: ``setup.py`` reads :data:`FILES` from it before
the package's dependencies are installed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

# Every template, relative to the repository root; DIR gets the same layout, so the relative paths
# inside them (prometheus.yml's rule_files, the promtool tests' rule_files) work there too.
FILES: tuple[str, ...] = (
    "prometheus.yml",
    "grafana/dashboards/llm-exporter.json",
    "grafana/provisioning/dashboards/llm-exporter.yml",
    "grafana/provisioning/datasources/llm-exporter.yml",
    "monitoring-templates/alerts.yml",
    "monitoring-templates/recording-rules.yml",
    "monitoring-templates/alertmanager.yml",
    "monitoring-templates/RUNBOOK.md",
    "monitoring-templates/tests/health.test.yml",
    "monitoring-templates/tests/http.test.yml",
    "monitoring-templates/tests/llm.test.yml",
    "monitoring-templates/tests/slo.test.yml",
    "monitoring-templates/kubernetes/kustomization.yaml",
    "monitoring-templates/kubernetes/prometheusrule.yaml",
    "monitoring-templates/kubernetes/servicemonitor.yaml",
)
# Files of those folders that are not templates: the stack builds the app from source, and the
# generator is a maintainer's tool (its output, prometheusrule.yaml, is shipped).
NOT_SHIPPED: tuple[str, ...] = ("docker-compose.yml", "monitoring-templates/kubernetes/generate.py")

PACKAGED = Path(__file__).resolve().parent / "_templates"  # in a wheel
CHECKOUT = Path(__file__).resolve().parent.parent  # the repository, for a source checkout


class TemplatesError(Exception):
    """The templates can't be found or written; the message is one line for the user."""


def source() -> Path:
    """The directory the templates are read from: the wheel's copy, else the source checkout."""
    for root in (PACKAGED, CHECKOUT):
        if all((root / name).is_file() for name in FILES):
            return root
    raise TemplatesError(f"this installation has no templates (looked in {PACKAGED} and {CHECKOUT})")


def write(dest: str | Path, *, force: bool = False) -> list[Path]:
    """Write every template under ``dest`` (created if needed); the paths written.

    A file that is already there with other content is not overwritten unless ``force``: it may be the
    user's edited copy. Nothing is written when one would be refused.
    """
    root, dest = source(), Path(dest)
    if dest.exists() and not dest.is_dir():
        raise TemplatesError(f"{dest} is not a directory")
    changed = [dest / n for n in FILES if (dest / n).exists() and (dest / n).read_bytes() != (root / n).read_bytes()]
    if changed and not force:
        more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
        raise TemplatesError(f"{changed[0]} exists with other content{more}; --force overwrites")
    written = []
    for name in FILES:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / name, target)
        written.append(target)
    return written
