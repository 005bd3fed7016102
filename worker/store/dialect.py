"""Insert-or-ignore, spelled per dialect (SQLite and PostgreSQL both say ON CONFLICT DO
NOTHING, through different SQLAlchemy constructs)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import literal_column
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session


def insert_ignore(session: Session, model: type[Any], **values: Any) -> bool:
    """Inserts a row unless it would break a unique constraint; True when it inserted."""
    return bool(insert_ignore_many(session, model, [values], literal_column("1")))


def insert_ignore_many(
    session: Session, model: type[Any], rows: list[dict[str, Any]], returning: Any = None
) -> list[Any]:
    """Inserts the rows that break no unique constraint in one statement; with
    ``returning``, that column of each row that went in (RETURNING tells reliably which
    rows did; rowcount does not on every driver)."""
    if not rows:
        return []
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(model).values(rows).on_conflict_do_nothing()
    if returning is None:
        session.execute(statement)
        return []
    return list(session.scalars(statement.returning(returning)))
