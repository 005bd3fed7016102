"""Alembic environment: the URL comes from settings (DATABASE_URL) unless the caller set
one; SQLite runs in batch mode so tables can be altered."""

from __future__ import annotations

from alembic import context

from s2s_contract.settings import Settings
from worker.store.engine import make_engine
from worker.store.models import Base

config = context.config


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url") or Settings().database_url
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            compare_type=True,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
