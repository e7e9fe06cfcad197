"""Command-line options that belong to no command."""

from __future__ import annotations

from importlib.metadata import version

from typer.testing import CliRunner

from pyacemaker.cli import app


def test_version_prints_the_installed_version_and_exits():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"pyacemaker {version('pyacemaker')}"
    assert "--version" in CliRunner().invoke(app, ["--help"]).output
    assert CliRunner().invoke(app, ["status", "--help"]).exit_code == 0  # commands still work
