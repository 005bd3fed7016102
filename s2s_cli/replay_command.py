"""``s2s replay`` and ``s2s retrain``: compare a candidate with the serving model on logged
dialogues, and run the whole export → fine-tune → replay → register → gate cycle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from s2s_cli.db import database_url, run_db_action
from s2s_cli.options import fail, settings_or_exit

ModelDir = Annotated[Path, typer.Option(help="Checkpoint folder.")]


def replay(
    candidate: ModelDir,
    baseline: ModelDir,
    limit: Annotated[int, typer.Option(help="Logged user turns to answer again.")] = 500,
    out: Annotated[Path, typer.Option(help="Report folder.")] = Path("var/replay"),
    part: Annotated[
        str,
        typer.Option(
            help="Conversations replayed: held-out (never fine-tuned on) | fine-tune | all."
        ),
    ] = "held-out",
) -> None:
    """Answer logged user turns with both models; write report.md / report.html / report.json."""
    from worker.replay import Gate, compare, load_inputs, replay_model, write_report
    from worker.store import DialogueStore
    from worker.store.export import PARTS

    if limit < 1:
        fail("--limit must be at least 1")
    if part not in PARTS:
        fail(f"--part must be one of {', '.join(PARTS)}, got {part!r}")
    store = DialogueStore(database_url())
    inputs = run_db_action(lambda: load_inputs(store, limit, part=part))
    if not inputs.logged:
        fail(f"the database holds no logged exchanges in the {part} part to replay")
    try:
        cand = replay_model("candidate", candidate, inputs)
        base = replay_model("baseline", baseline, inputs)
    except (ValueError, OSError) as exc:
        fail(str(exc))
    compare(cand, base)
    summary = write_report(out, inputs, cand, base, Gate().verdict(cand, base))
    typer.echo(
        json.dumps({"report": str(out / "report.html"), **summary}, indent=2, ensure_ascii=False)
    )


def retrain(
    out: Annotated[
        Path | None, typer.Option(help="Runs go under this folder (default: RETRAIN_DIR).")
    ] = None,
    epochs: Annotated[int, typer.Option(help="Fine-tuning epochs.")] = 1,
    mix: Annotated[float, typer.Option(help="Share of original-corpus pairs.")] = 0.5,
    mix_with: Annotated[str, typer.Option(help="The original corpus.")] = "chitchat",
    limit: Annotated[int, typer.Option(help="Logged turns to replay.")] = 500,
    min_pairs: Annotated[int, typer.Option(help="Do nothing below this many pairs.")] = 20,
) -> None:
    """Export, fine-tune the serving model, replay, register; promote if the gate passes."""
    from worker.retrain import RetrainPlan
    from worker.retrain import retrain as run_retrain
    from worker.runtime import registry_source
    from worker.store import DialogueStore

    settings = settings_or_exit()
    store = DialogueStore(settings.database_url)
    try:
        _, baseline = run_db_action(lambda: registry_source(store, settings)())
        plan = RetrainPlan(
            baseline,
            out or settings.retrain_dir,
            epochs=epochs,
            mix=mix,
            mix_with=mix_with,
            replay_limit=limit,
            min_pairs=min_pairs,
            device=settings.device,
        )
        result = run_db_action(lambda: run_retrain(store, plan, progress=True))
    except (ValueError, OSError) as exc:
        fail(str(exc))
    typer.echo(json.dumps(result, indent=2, ensure_ascii=False))
