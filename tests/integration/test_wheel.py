"""The built packages: the sdist holds what the wheel is built from, and the wheel carries the templates
(``llm-exporter templates`` from an installed wheel writes them byte for byte as the repository has them).

.ci/newcomer.py goes further in CI: it installs the wheel in a fresh venv and runs the demo.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter import __version__, templates

from ..support import REPO
from ..support.cli import exporter_env

WHEEL = f"llm_exporter-{__version__}-py3-none-any.whl"
SDIST = f"llm_exporter-{__version__}.tar.gz"


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``python -m build``: the sdist, then the wheel built from that sdist (not from the checkout)."""
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(REPO)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    yield out


def test_the_sdist_holds_the_templates_and_the_build_hook(dist: Path) -> None:
    with tarfile.open(dist / SDIST) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    assert {*templates.FILES, "setup.py", "MANIFEST.in", "pyproject.toml", "README.md"} <= names


def test_the_wheel_carries_every_template_and_only_the_package(dist: Path) -> None:
    with zipfile.ZipFile(dist / WHEEL) as wheel:
        names = set(wheel.namelist())
        for name in templates.FILES:
            assert wheel.read(f"exporter/_templates/{name}") == (REPO / name).read_bytes(), name
    assert {n.split("/")[0] for n in names} == {"exporter", f"llm_exporter-{__version__}.dist-info"}
    assert {"exporter/py.typed", "exporter/pricing/pricing.yaml"} <= names


def test_templates_from_the_installed_wheel(dist: Path, tmp_path: Path) -> None:
    site = tmp_path / "site-packages"  # what pip puts there: the wheel unpacked
    with zipfile.ZipFile(dist / WHEEL) as wheel:
        wheel.extractall(site)
    out = tmp_path / "out"
    env = exporter_env(PYTHONPATH=str(site))
    code = "import exporter.templates as t; assert t.source() == t.PACKAGED, t.source(); print(t.PACKAGED)"
    check = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert check.stdout == f"{site / 'exporter' / '_templates'}\n", check.stderr
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "templates", str(out)], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == sorted(templates.FILES)
    for name in templates.FILES:
        assert (out / name).read_bytes() == (REPO / name).read_bytes(), name
