"""Insert-or-ignore, spelled per dialect (SQLite and PostgreSQL both say ON CONFLICT DO
NOTHING, through different SQLAlchemy constructs)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import Insert, Table, literal_column
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session


def insert_ignore(session: Session, model: type[Any], **values: Any) -> bool:
    """Inserts a row unless it would break a unique constraint; True when it inserted."""
    return bool(insert_ignore_many(session, model, [values], literal_column("1")))


def insert_ignore_many(
    session: Session, model: type[Any], rows: list[dict[str, Any]], returning: Any = None
) -> list[Any]:
    """Inserts the rows that break no unique constraint; with ``returning``, that column
    of each row that went in (RETURNING tells reliably which rows did; rowcount does not on
    every driver). The rows go as parameters of one cached statement, which SQLAlchemy
    sends as multi-row INSERTs: a statement built around the rows' values would be
    compiled anew every time, which cost more than the database's work."""
    if not rows:
        return []
    statement = _insert_ignore(session.get_bind().dialect.name, model.__table__)
    if returning is None:
        session.execute(statement, rows)
        return []
    return list(session.scalars(statement.returning(returning), rows))


@lru_cache(maxsize=64)
def _insert_ignore(dialect: str, table: Table) -> Insert:
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    return insert(table).on_conflict_do_nothing()
