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
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    # RETURNING tells reliably whether a row went in; rowcount does not on every driver.
    statement = insert(model).values(**values).on_conflict_do_nothing()
    return session.execute(statement.returning(literal_column("1"))).first() is not None
