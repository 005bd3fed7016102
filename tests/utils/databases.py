"""Scratch databases for store tests: a SQLite file, and a fresh PostgreSQL database
created on the server at DATABASE_URL and dropped afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


def service_missing(reason: str) -> None:
    """Under CI a missing service fails the run; elsewhere the test is skipped."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@contextmanager
def scratch_postgres() -> Iterator[str]:
    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith("postgresql"):
        service_missing("DATABASE_URL does not name a PostgreSQL server")
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    name = f"s2s_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # connection refused, no CREATEDB right, ...
        admin.dispose()
        service_missing(f"PostgreSQL at DATABASE_URL unusable: {str(exc).splitlines()[0]}")
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def scratch_database(kind: str, tmp_path: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.sqlite3'}"
    else:
        with scratch_postgres() as url:
            yield url
