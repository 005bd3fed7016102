"""A bad configuration value is one line that names the variable, never its value: a URL
may carry a password."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from s2s_cli.main import app
from s2s_contract.settings import ConfigError, load_settings

SECRET = "s3cretpw"
ENTRY_POINTS = [
    ["chat"],
    ["bot"],
    ["worker"],
    ["db", "upgrade"],
    ["db", "current"],
    ["models", "list"],
    ["models", "index"],
    ["retrain"],
    ["export", "--out", "{tmp}/pairs.jsonl"],
]


@pytest.mark.parametrize("argv", ENTRY_POINTS, ids=lambda a: " ".join(a[:2]))
def test_a_bad_database_url_is_one_line_without_its_password(
    argv: list[str], tmp_path: Path
) -> None:
    env = {
        "DATABASE_URL": f"mysql://nobody:{SECRET}@127.0.0.1:1/x",
        "REDIS_URL": f"redis://:{SECRET}@127.0.0.1:1/0",
        "TELEGRAM_TOKEN": "123:abc",
    }
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 2, result.output
    assert SECRET not in result.output
    (line,) = result.output.strip().splitlines()
    assert "DATABASE_URL" in line and "sqlite:///PATH" in line


@pytest.mark.parametrize("scheme", ["postgres://", "postgresql://"])
def test_plain_postgres_urls_are_read_with_the_shipped_driver(
    scheme: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"{scheme}u:{SECRET}@db:5432/chat")
    assert load_settings().database_url == f"postgresql+psycopg://u:{SECRET}@db:5432/chat"


def test_every_invalid_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", f"oracle://u:{SECRET}@db/x")
    monkeypatch.setenv("BATCH_MAX_SIZE", "0")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "DATABASE_URL:" in str(caught.value) and "BATCH_MAX_SIZE:" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_a_worker_whose_metrics_port_is_taken_stops_in_one_line() -> None:
    """Two workers on one machine with one METRICS_PORT: the second stops before Celery
    starts, saying what to do (it used to run without its sweeper, and its health check
    would have probed the first worker)."""
    import socket

    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"REDIS_URL": "redis://127.0.0.1:1/0", "METRICS_PORT": str(port)}
        result = CliRunner().invoke(app, ["worker"], env=env)
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        f"error: METRICS_PORT {port} cannot be served (Address already in use); another "
        "worker on this machine? Give each worker its own METRICS_PORT, or 0 to turn the "
        "endpoint off"
    ]
