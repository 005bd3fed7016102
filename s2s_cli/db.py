"""``s2s db``: schema migrations of the dialogue store (DATABASE_URL)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

import typer

from s2s_cli.options import fail, settings_or_exit

T = TypeVar("T")

db_app = typer.Typer(help="Migrate the dialogue database at DATABASE_URL.", no_args_is_help=True)


def database_url() -> str:
    """DATABASE_URL from settings; an invalid one ends the command with its error."""
    return settings_or_exit().database_url


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
    """Runs a database action; a database or Alembic error ends the command with one line
    that says what to do."""
    from alembic.util import CommandError
    from sqlalchemy.exc import DBAPIError

    try:
        return action()
    except CommandError as exc:
        fail(str(exc).splitlines()[0])
    except DBAPIError as exc:
        fail(database_error_line(exc))


def database_error_line(exc: Exception) -> str:
    """What a person should do about ``exc``: migrate, fix the SQLite path, or check that
    the server at DATABASE_URL is up."""
    from sqlalchemy.exc import OperationalError

    first = str(getattr(exc, "orig", exc)).splitlines()[0]
    undefined_table = getattr(getattr(exc, "orig", None), "sqlstate", None) == "42P01"
    if undefined_table or "no such table" in first:
        return "the database at DATABASE_URL has no dialogue tables: run `s2s db upgrade` first"
    if "unable to open database file" in first:
        return (
            "cannot open the SQLite file of DATABASE_URL (its folder does not exist?): fix the "
            "path, or run `s2s db upgrade` to create the database there"
        )
    if isinstance(exc, OperationalError):
        return (
            f"cannot reach the database at DATABASE_URL ({first}): check DATABASE_URL and "
            "that the server is up"
        )
    return f"database error: {first}"
