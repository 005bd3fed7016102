"""`s2s db upgrade|downgrade|current` against DATABASE_URL."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from s2s_cli.main import app

runner = CliRunner()


def test_upgrade_current_downgrade(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'var' / 'db.sqlite3'}"}
    up = runner.invoke(app, ["db", "upgrade"], env=env)
    assert up.exit_code == 0, up.output
    assert "0001 (head)" in runner.invoke(app, ["db", "current"], env=env).stdout
    down = runner.invoke(app, ["db", "downgrade", "base"], env=env)
    assert down.exit_code == 0 and "no revision" in down.stdout


def test_bad_database_url_and_revision(tmp_path: Path) -> None:
    bad = runner.invoke(app, ["db", "current"], env={"DATABASE_URL": "mysql://x/y"})
    assert bad.exit_code == 2 and "DATABASE_URL must be" in bad.output
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    unknown = runner.invoke(app, ["db", "upgrade", "9999"], env=env)
    assert unknown.exit_code == 2 and "9999" in unknown.output
