"""Alembic driven from code: ``s2s db upgrade|downgrade|current`` and the tests use this."""

from __future__ import annotations

import io
from pathlib import Path

from alembic import command
from alembic.config import Config

from worker.store.engine import sqlite_file

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(url: str) -> Config:
    config = Config(stdout=io.StringIO())
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Creating the database is migration's job: a SQLite file's folder is made here only
    (any other command refuses a SQLite path into a missing folder, so a typo in
    DATABASE_URL is an error, not a new empty database)."""
    path = sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def current(url: str) -> str:
    config = alembic_config(url)
    command.current(config)
    stream = config.stdout
    assert isinstance(stream, io.StringIO)
    return stream.getvalue().strip() or "(empty database: no revision)"


def check(url: str) -> None:
    """Raises when the models and the migrations disagree (autogenerate finds changes)."""
    command.check(alembic_config(url))
