"""``llm-exporter templates``: every template, byte for byte as the repository has it (here from the
checkout; tests/integration/test_wheel.py does the same from a built wheel)."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter import templates
from exporter.cli import main

from ..support import REPO

FOLDERS = ("grafana", "monitoring-templates")


def repository_templates() -> set[str]:
    """Every file of the template folders and the top-level configs, as the repository has them."""
    found = {str(p.relative_to(REPO)) for folder in FOLDERS for p in (REPO / folder).rglob("*") if p.is_file()}
    return {f for f in found if "__pycache__" not in f} | {"prometheus.yml", "docker-compose.yml"}


def test_every_file_of_the_template_folders_is_shipped_or_deliberately_not() -> None:
    assert set(templates.FILES) | set(templates.NOT_SHIPPED) == repository_templates()
    assert not set(templates.FILES) & set(templates.NOT_SHIPPED)


def test_writes_every_template_byte_for_byte(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["templates", str(tmp_path / "out")]) == 0
    written = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert written == sorted(templates.FILES)
    for name in templates.FILES:
        assert (tmp_path / "out" / name).read_bytes() == (REPO / name).read_bytes(), name
    out = capsys.readouterr().out
    assert out.startswith(f"wrote {len(templates.FILES)} files under {tmp_path / 'out'}/:\n")
    assert out.endswith(f"check them with: promtool check config {tmp_path / 'out' / 'prometheus.yml'}\n")


def test_an_edited_copy_is_kept_unless_forced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["templates", str(tmp_path)]) == 0
    assert main(["templates", str(tmp_path)]) == 0  # the same content again: nothing to refuse
    edited = tmp_path / "monitoring-templates" / "alerts.yml"
    edited.write_text("# mine\n")
    (tmp_path / "prometheus.yml").write_text("# mine too\n")
    capsys.readouterr()
    assert main(["templates", str(tmp_path)]) == 2
    message = f"{tmp_path / 'prometheus.yml'} exists with other content (and 1 more); --force overwrites"
    assert capsys.readouterr().err == f"llm-exporter: error: {message}\n"
    assert edited.read_text() == "# mine\n"
    assert main(["templates", str(tmp_path), "--force"]) == 0
    assert edited.read_bytes() == (REPO / "monitoring-templates" / "alerts.yml").read_bytes()


def test_a_file_where_the_directory_should_be_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "taken").write_text("")
    assert main(["templates", str(tmp_path / "taken")]) == 2
    assert capsys.readouterr().err == f"llm-exporter: error: {tmp_path / 'taken'} is not a directory\n"
    (tmp_path / "grafana").write_text("")  # a file where a folder of the templates goes
    assert main(["templates", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith(f"llm-exporter: error: cannot write to {tmp_path / 'grafana'}")


def test_the_default_is_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["templates"]) == 0
    assert (tmp_path / "prometheus.yml").read_bytes() == (REPO / "prometheus.yml").read_bytes()
