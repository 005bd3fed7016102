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
    target = writable_target(out)
    tmp = target.with_name(target.name + ".partial")

    def run() -> dict[str, int]:
        store = DialogueStore(database_url())
        with open(tmp, "w", encoding="utf-8") as f:
            counts = export_pairs(store, f, flt, progress=True)
        tmp.replace(target)  # a failed export never leaves a half file under the real name
        return dict(counts)

    try:
        counts = run_db_action(run)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        fail(f"cannot write --out {out}: {exc.strerror or type(exc).__name__}")
    typer.echo(json.dumps({"out": str(out), **counts}, indent=2, ensure_ascii=False))


def writable_target(out: Path) -> Path:
    """The regular file an export replaces: a symlink's target (the link stays a link), a
    new file in a folder created if missing; anything else (a folder, a device, a fifo, a
    socket) is a one-line refusal naming the path given."""
    target = out.resolve() if out.is_symlink() else out
    if target.exists() and not target.is_file():
        kind = "a directory" if target.is_dir() else "not a regular file"
        fail(f"--out {out} is {kind}: give the path of a JSONL file")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"cannot create the folder of --out {out}: {exc.strerror or type(exc).__name__}")
    return target
