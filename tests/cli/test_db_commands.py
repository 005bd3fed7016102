"""`s2s db upgrade|downgrade|current` against DATABASE_URL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from s2s_cli.main import app

runner = CliRunner()


def test_upgrade_current_downgrade(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'var' / 'db.sqlite3'}"}
    up = runner.invoke(app, ["db", "upgrade"], env=env)
    assert up.exit_code == 0, up.output
    assert "0002 (head)" in runner.invoke(app, ["db", "current"], env=env).stdout
    down = runner.invoke(app, ["db", "downgrade", "base"], env=env)
    assert down.exit_code == 0 and "no revision" in down.stdout


def test_bad_database_url_and_revision(tmp_path: Path) -> None:
    bad = runner.invoke(app, ["db", "current"], env={"DATABASE_URL": "mysql://x/y"})
    assert bad.exit_code == 2 and "DATABASE_URL: must be" in bad.output
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    unknown = runner.invoke(app, ["db", "upgrade", "9999"], env=env)
    assert unknown.exit_code == 2 and "9999" in unknown.output


def test_models_register_list_promote(
    tmp_path: Path, checkpoint_dir: Path, tiny_tokenizer: object
) -> None:
    from s2s_core import save_checkpoint
    from tests.conftest import tiny_model

    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    assert runner.invoke(app, ["db", "upgrade"], env=env).exit_code == 0
    first = runner.invoke(app, ["models", "register", str(checkpoint_dir), "--promote"], env=env)
    assert first.exit_code == 0, first.output
    other = save_checkpoint(
        tmp_path / "other",
        tiny_model(tiny_tokenizer.vocab_size, cell="gru"),  # type: ignore[attr-defined]
        tiny_tokenizer,
        {},
    )  # type: ignore[arg-type]
    second = runner.invoke(app, ["models", "register", str(other)], env=env).stdout.strip()
    promoted = runner.invoke(app, ["models", "promote", second[:12]], env=env)
    assert promoted.exit_code == 0 and promoted.stdout.strip() == second
    listed = json.loads(runner.invoke(app, ["models", "list"], env=env).stdout)
    assert {m["id"]: m["status"] for m in listed} == {
        first.stdout.strip(): "retired",
        second: "active",
    }
    bad = runner.invoke(app, ["models", "register", str(tmp_path / "nope")], env=env)
    assert bad.exit_code == 2 and "not a directory" in bad.output
    assert promoted.stderr.strip() == f"promoted {second[:12]} (replacing {first.stdout[:12]})"
    for short in ("", "7", second[:5]):
        refused = runner.invoke(app, ["models", "promote", short], env=env)
        assert refused.exit_code == 2 and "at least 6 characters" in refused.output
    unknown = runner.invoke(app, ["models", "compare", second[:12], "nosuchversion"], env=env)
    assert unknown.exit_code == 2
    assert unknown.output.strip().splitlines() == [
        "error: unknown version 'nosuchversion': neither registered nor the writer of any "
        "stored reply"
    ]
    empty = runner.invoke(app, ["models", "compare", second[:12], first.stdout[:12]], env=env)
    assert empty.exit_code == 0 and "no replies in this window" in empty.stdout


def test_json_logs_are_one_object_per_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "LOG_FORMAT": "json",
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [sys.executable, "-c", "from s2s_cli.main import app; app()", "db", "upgrade"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    assert lines and all({"time", "level", "logger", "message"} <= set(e) for e in lines)
    assert any("0001" in e["message"] for e in lines)
    bad = runner.invoke(app, ["--log-format", "xml", "db", "current"])
    assert bad.exit_code == 2


UPGRADE_FIRST = "has no dialogue tables: run `s2s db upgrade` first"


def _one_line_error(args: list[str], url: str) -> str:
    result = runner.invoke(app, args, env={"DATABASE_URL": url})
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    return result.output


def test_models_list_on_an_unmigrated_sqlite_says_to_upgrade(tmp_path: Path) -> None:
    assert UPGRADE_FIRST in _one_line_error(["models", "list"], f"sqlite:///{tmp_path / 'x.db'}")


def test_a_sqlite_path_into_a_missing_folder_is_refused_not_created(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'typo' / 'x.db'}"
    assert "fix the path" in _one_line_error(["models", "list"], url)
    assert not (tmp_path / "typo").exists()  # no new empty database behind a typo


def test_an_unreachable_server_is_named_as_such(tmp_path: Path) -> None:
    from tests.utils.services import free_port

    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test"
    for args in (["models", "list"], ["chat"]):
        output = _one_line_error(args, url)
        assert "cannot reach the database" in output and "check DATABASE_URL" in output


@pytest.mark.integration
def test_models_list_on_an_unmigrated_postgres_says_to_upgrade() -> None:
    from tests.utils.databases import scratch_postgres

    with scratch_postgres() as url:
        assert UPGRADE_FIRST in _one_line_error(["models", "list"], url)
