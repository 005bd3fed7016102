"""``s2s db``: schema migrations of the dialogue store (DATABASE_URL)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

import typer

from s2s_cli.options import fail

T = TypeVar("T")

db_app = typer.Typer(help="Migrate the dialogue database at DATABASE_URL.", no_args_is_help=True)


def database_url() -> str:
    """DATABASE_URL from settings; an invalid one ends the command with its error."""
    from pydantic import ValidationError

    from s2s_contract.settings import Settings

    try:
        return Settings().database_url
    except ValidationError as exc:
        fail(str(exc.errors()[0]["msg"]))


@db_app.command()
def upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Upgrade the schema (to the newest revision by default)."""
    from worker.store import migrate

    run_db_action(lambda: migrate.upgrade(database_url(), revision))
    typer.echo(migrate.current(database_url()))


@db_app.command()
def downgrade(revision: Annotated[str, typer.Argument(help="Target revision, e.g. base.")]) -> None:
    """Downgrade the schema to REVISION."""
    from worker.store import migrate

    run_db_action(lambda: migrate.downgrade(database_url(), revision))
    typer.echo(migrate.current(database_url()))


@db_app.command()
def current() -> None:
    """Print the schema revision the database is at."""
    from worker.store import migrate

    run_db_action(lambda: typer.echo(migrate.current(database_url())))


def run_db_action(action: Callable[[], T]) -> T:
    """Runs a database action; a database or Alembic error becomes one error line."""
    from alembic.util import CommandError
    from sqlalchemy.exc import OperationalError

    try:
        return action()
    except (CommandError, OperationalError) as exc:
        fail(str(exc).splitlines()[0])
