"""`s2s --help` lists each command by its docstring's first paragraph, line breaks and all:
a first paragraph over several lines showed as a sentence cut mid-way."""

from __future__ import annotations

import inspect
from typing import Any

import typer

from s2s_cli.main import app


def commands(group: Any, prefix: str = "s2s") -> list[tuple[str, Any]]:
    """Every command under ``group`` (Typer's own click), sub-groups walked."""
    found = []
    for name, command in group.commands.items():
        found.append((f"{prefix} {name}", command))
        if hasattr(command, "commands"):
            found += commands(command, f"{prefix} {name}")
    return found


def test_every_command_summary_is_one_line() -> None:
    listed = commands(typer.main.get_command(app))
    assert len(listed) > 20
    for name, command in listed:
        summary = inspect.cleandoc(command.help or "").split("\n\n")[0]
        assert summary and "\n" not in summary, f"{name}: {summary!r}"
