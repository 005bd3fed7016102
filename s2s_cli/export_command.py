"""``s2s export``: logged conversations → training pairs (JSONL) for fine-tuning."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from s2s_cli.db import database_url, run_db_action
from s2s_cli.options import fail, moment


def export(
    out: Annotated[Path, typer.Option(help="JSONL file to write.")],
    since: Annotated[str | None, typer.Option(help="Only turns at or after (ISO, UTC).")] = None,
    until: Annotated[str | None, typer.Option(help="Only turns before (ISO, UTC).")] = None,
    targets: Annotated[
        str, typer.Option(help="human (what people said) | liked (👍 replies) | both")
    ] = "both",
    context_turns: Annotated[int, typer.Option(help="Turns of context per pair.")] = 3,
    part: Annotated[
        str,
        typer.Option(
            help="all | fine-tune (to fine-tune on) | held-out (what replay judges a candidate on)."
        ),
    ] = "all",
) -> None:
    """Export logged conversations as training pairs; prints counts per category."""
    from worker.store import DialogueStore
    from worker.store.export import EARLIEST, LATEST, ExportFilter, export_pairs

    try:
        flt = ExportFilter(
            since=moment(since, "--since") or EARLIEST,
            until=moment(until, "--until") or LATEST,
            targets=targets,
            context_turns=context_turns,
            part=part,
        )
    except ValueError as exc:
        fail(str(exc))
    if out.exists() and out.is_dir():
        fail(f"--out {out} is a directory")
    tmp = out.with_name(out.name + ".partial")

    def run() -> dict[str, int]:
        store = DialogueStore(database_url())
        with open(tmp, "w", encoding="utf-8") as f:
            counts = export_pairs(store, f, flt, progress=True)
        tmp.replace(out)  # a failed export never leaves a half file under the real name
        return dict(counts)

    try:
        counts = run_db_action(run)
    except OSError as exc:
        fail(str(exc))
    typer.echo(json.dumps({"out": str(out), **counts}, indent=2, ensure_ascii=False))
