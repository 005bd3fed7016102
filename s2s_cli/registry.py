"""``s2s models``: the model registry. Workers serve the active version and switch to a newly
promoted one between batches, without a restart."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from s2s_cli.db import database_url, run_db_action
from s2s_cli.options import fail, moment

if TYPE_CHECKING:
    from worker.store.comparison import VersionStats
    from worker.store.registry import ModelRegistry

models_app = typer.Typer(help="Register, list and promote model versions.", no_args_is_help=True)


@contextmanager
def _registry() -> Iterator[ModelRegistry]:
    """The registry at DATABASE_URL; its connections closed however the command ends."""
    from worker.store import DialogueStore

    store = DialogueStore(database_url())
    try:
        yield store.registry
    finally:
        store.engine.dispose()


@models_app.command("list")
def list_models() -> None:
    """Registered versions as JSON, newest first."""
    with _registry() as registry:
        typer.echo(json.dumps(run_db_action(registry.list_models), indent=2))


@models_app.command()
def register(
    model: Annotated[Path, typer.Argument(help="Checkpoint folder.")],
    promote: Annotated[bool, typer.Option(help="Make it the active version at once.")] = False,
) -> None:
    """Register a checkpoint as a candidate (its id is the sha256 of its weights)."""
    from s2s_core.checkpoint import load_checkpoint, weights_digest

    try:
        _, _, meta = load_checkpoint(model)  # refuse a folder workers could not load
    except (ValueError, OSError) as exc:
        fail(str(exc))
    version = weights_digest(model)
    with _registry() as registry:
        run_db_action(
            lambda: registry.register_model(version, str(model.resolve()), meta.get("best") or {})
        )
        if promote:
            run_db_action(lambda: registry.promote(version))
    typer.echo(version)


# Votes (👍 or 👎) each side needs before --require-better compares them: intervals of a
# handful of votes can lie apart by chance.
MIN_VOTES = 20


@models_app.command()
def promote(
    version: Annotated[str, typer.Argument(help="Version id (or a unique prefix).")],
    require_better: Annotated[
        str | None,
        typer.Option(
            help="Promote only if VERSION's 👍 rate is significantly above this version's "
            "(Wilson 95% intervals apart, at least 20 votes each, over --since/--until)."
        ),
    ] = None,
    since: Annotated[str | None, typer.Option(help="Window start (ISO date/time, UTC).")] = None,
    until: Annotated[str | None, typer.Option(help="Window end (ISO date/time, UTC).")] = None,
) -> None:
    """Make VERSION the active model; the previous active one is retired."""
    with _registry() as registry:
        version_id = _unique(registry, version)
        if require_better is not None:
            baseline = _version(registry, require_better)
            ours, theirs = _compare(registry, [version_id, baseline], since, until)
            few = [
                f"{stats.version[:12]} {votes}"
                for stats in (ours, theirs)
                if (votes := stats.liked.hits + stats.disliked.hits) < MIN_VOTES
            ]
            if few:  # 2 of 2 liked beat 19 of 85 (replies in a terminal get no buttons)
                fail(
                    f"not promoted: too few votes ({', '.join(few)}); --require-better wants "
                    f"{MIN_VOTES} 👍/👎 on each side in the window (--since the canary started)"
                )
            if ours.liked.interval[0] <= theirs.liked.interval[1]:
                fail(
                    f"not promoted: liked {ours.liked} vs {theirs.liked} for "
                    f"{baseline[:12]}; the intervals overlap (more votes needed, or it is "
                    "not better)"
                )
        before = run_db_action(registry.active_model)
        run_db_action(lambda: registry.promote(version_id))
    replaced = f"replacing {before[0][:12]}" if before else "no version was active"
    typer.echo(f"promoted {version_id[:12]} ({replaced})", err=True)
    typer.echo(version_id)


@models_app.command()
def canary(
    version: Annotated[str, typer.Argument(help="Version id (or a unique prefix).")],
    share: Annotated[int, typer.Option(min=1, max=99, help="Percent of chats it answers.")] = 10,
) -> None:
    """Let VERSION answer SHARE percent of chats beside the active version.

    The same chats every time, chosen by chat id; `promote` or `retire` ends it. Workers
    pick it up between batches."""
    with _registry() as registry:
        version_id = _unique(registry, version)
        try:
            run_db_action(lambda: registry.start_canary(version_id, share))
        except ValueError as exc:
            fail(str(exc))
    typer.echo(version_id)


@models_app.command()
def compare(
    first: Annotated[str, typer.Argument(help="Version id (or a unique registered prefix).")],
    second: Annotated[str, typer.Argument(help="Version id (or a unique registered prefix).")],
    since: Annotated[str | None, typer.Option(help="Window start (ISO date/time, UTC).")] = None,
    until: Annotated[str | None, typer.Option(help="Window end (ISO date/time, UTC).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """Compare two versions on what people did with their replies.

    👍 and 👎 rates with Wilson 95% intervals, conversations they opened, turns per
    conversation, the share the user continued after the first reply, replies/s, latency,
    and the share of replies the Seq2Seq wrote or took from the corpus."""
    with _registry() as registry:
        versions = [_version(registry, first), _version(registry, second)]
        stats = _compare(registry, versions, since, until)
    if as_json:
        typer.echo(json.dumps([v.as_dict() for v in stats], indent=2, ensure_ascii=False))
        return
    rows = [
        ("version", [v.version[:12] for v in stats]),
        ("replies", [str(v.replies) for v in stats]),
        ("liked (👍)", [str(v.liked) for v in stats]),
        ("disliked (👎)", [str(v.disliked) for v in stats]),
        ("conversations opened", [str(v.conversations) for v in stats]),
        ("turns per conversation", [_number(v.mean_turns) for v in stats]),
        ("user went on after the first reply", [str(v.continued) for v in stats]),
        ("replies/s", [_number(v.replies_per_s) for v in stats]),
        ("decode ms, median", [_number(v.decode_ms_p50) for v in stats]),
        ("queue wait ms, median", [_number(v.queue_wait_ms_p50) for v in stats]),
        ("replies by source", [_shares(v.sources) for v in stats]),
    ]
    width = max(len(label) for label, _ in rows)
    column = max(len(cell) for _, cells in rows for cell in cells)
    for label, cells in rows:
        typer.echo("  ".join([label.ljust(width), *(cell.ljust(column) for cell in cells)]))


def _shares(sources: dict[str, float]) -> str:
    return ", ".join(f"{name} {share:.0%}" for name, share in sources.items()) or "-"


def _compare(
    registry: ModelRegistry, versions: list[str], since: str | None, until: str | None
) -> list[VersionStats]:
    from worker.store.comparison import compare as compare_versions

    window = (moment(since, "--since"), moment(until, "--until"))
    return run_db_action(lambda: compare_versions(registry.reads, versions, *window))


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _version(registry: ModelRegistry, prefix: str) -> str:
    """A version by unique prefix: a registered one, or one that wrote stored replies
    without being registered (MODEL_DIR's); anything else is a one-line error."""
    from worker.store.comparison import served_versions

    ids = [m["id"] for m in run_db_action(registry.list_models) if m["id"].startswith(prefix)]
    ids = ids or run_db_action(lambda: served_versions(registry.reads, prefix))
    if prefix in ids:
        return prefix
    _long_enough(prefix)
    if len(ids) != 1:
        fail(
            f"unknown version {prefix!r}: neither registered nor the writer of any stored reply"
            if not ids
            else f"{len(ids)} versions match {prefix!r}: give more of the id"
        )
    return str(ids[0])


@models_app.command()
def retire(
    version: Annotated[str, typer.Argument(help="Version id (or a unique prefix).")],
) -> None:
    """Take VERSION out of service (workers fall back to MODEL_DIR if it was active)."""
    with _registry() as registry:
        version_id = _unique(registry, version)
        run_db_action(lambda: registry.retire(version_id))
    typer.echo(version_id)


# Fewer characters than this could name a version by accident ("promote 7"), as in git.
MIN_PREFIX = 6


def _long_enough(prefix: str) -> None:
    if len(prefix) < MIN_PREFIX:
        fail(
            f"give the whole version id or at least {MIN_PREFIX} characters of it "
            "(`s2s models list`)"
        )


def _unique(registry: ModelRegistry, prefix: str) -> str:
    ids = [m["id"] for m in run_db_action(registry.list_models) if m["id"].startswith(prefix)]
    if prefix in ids:
        return prefix
    _long_enough(prefix)
    if len(ids) != 1:
        fail(f"{len(ids)} registered versions match {prefix!r}")
    return str(ids[0])


@models_app.command()
def export(
    model: Annotated[Path, typer.Argument(help="Checkpoint folder to export.")],
    out: Annotated[Path, typer.Argument(help="New checkpoint folder.")],
    dtype: Annotated[str, typer.Option(help="float16 | bfloat16 | float32")] = "float16",
    backward: Annotated[
        Path | None,
        typer.Option(
            help="Backward model p(message | reply) to ship for MMI reranking (default: the "
            "one MODEL carries, if any). It must share MODEL's tokenizer."
        ),
    ] = None,
) -> None:
    """Copy a checkpoint with its weights cast to DTYPE: float16 ships at half the size.

    A chit-chat model's stock sentences are found on the way (`s2s models stock`)."""
    import shutil

    from s2s_core.checkpoint import DTYPES, load_checkpoint, save_checkpoint
    from s2s_core.mmi import BACKWARD_DIR, load_backward_checkpoint

    if dtype not in DTYPES:
        fail(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if out.resolve() == model.resolve():
        fail("export needs a different output folder than the checkpoint it reads")
    backward = backward or (model / BACKWARD_DIR if (model / BACKWARD_DIR).is_dir() else None)
    try:
        net, tokenizer, meta = load_checkpoint(model)
        if backward is not None:
            back, back_tokenizer, back_meta = load_backward_checkpoint(backward, tokenizer)
            save_checkpoint(out / BACKWARD_DIR, back, back_tokenizer, back_meta, dtype)
        if (meta.get("data") or {}).get("task", "chitchat") == "chitchat":
            meta["stock_sentences"] = _stock_of(net, tokenizer, meta, model)
        save_checkpoint(out, net, tokenizer, {**meta, "exported_from": str(model)}, dtype)
        if (model / "loss_curve.png").is_file():
            shutil.copy2(model / "loss_curve.png", out / "loss_curve.png")
    except (ValueError, OSError) as exc:
        fail(str(exc))
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    typer.echo(json.dumps({"out": str(out), "dtype": dtype, "bytes": size}))


@models_app.command()
def stock(
    model: Annotated[Path, typer.Argument(help="Checkpoint whose stock sentences to find.")],
) -> None:
    """Find the sentences a checkpoint says to any conversation (its metrics.json keeps them).

    Decodes its n-best for 300 validation conversations (~20 s on two CPU cores) and keeps
    each sentence found for 2% of them that people said in at most 1 in 20,000 training
    replies; the reply choice and `s2s eval` then treat them as stock sentences. `s2s models
    export` runs this too."""
    from s2s_core.checkpoint import load_checkpoint, save_card

    try:
        net, tokenizer, meta = load_checkpoint(model)
        meta["stock_sentences"] = _stock_of(net, tokenizer, meta, model)
        save_card(model, net, meta)
    except (ValueError, OSError) as exc:
        fail(str(exc))
    found = meta["stock_sentences"]
    typer.echo(json.dumps({"model": str(model), "sentences": found["sentences"]}, indent=2))


def _stock_of(net: Any, tokenizer: Any, meta: dict[str, Any], path: Path) -> dict[str, Any]:
    """The checkpoint's stock sentences under the product's default n-best (``varied``; a
    refine model's decoded on what it retrieves, as it replies)."""
    from s2s_cli.options import settings_or_exit
    from s2s_core.refine import is_refine, load_refiner
    from s2s_core.stock import checkpoint_stock
    from worker.replies import decode_config

    if (meta.get("data") or {}).get("task", "chitchat") != "chitchat":
        raise ValueError("stock sentences are counted on the chit-chat corpus's conversations")
    cache = settings_or_exit().retrieval_dir if is_refine(meta) else None
    refiner = load_refiner(meta, net.config, tokenizer, cache, checkpoint=path)
    cfg = decode_config("varied", meta.get("decode"))
    return checkpoint_stock(net, tokenizer, meta, cfg, refiner, progress=True)


@models_app.command()
def card(
    model: Annotated[Path, typer.Argument(help="Checkpoint folder whose card to write.")],
    eval_files: Annotated[
        list[Path] | None, typer.Option("--eval", help="`s2s eval` JSON output (repeatable).")
    ] = None,
    baselines: Annotated[
        list[Path] | None,
        typer.Option("--baseline", help="Another checkpoint to summarise beside it."),
    ] = None,
    notes: Annotated[
        Path | None, typer.Option(help="Markdown paragraphs: hardware, time, choices.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="The card's title.")] = None,
    description: Annotated[str | None, typer.Option(help="The card's first paragraph.")] = None,
) -> None:
    """Add evaluations, baselines and notes to a checkpoint's card.

    They go into its metrics.json, and MODEL_CARD.md is rewritten; the weights stay as
    they are."""
    from s2s_core.checkpoint import load_checkpoint, save_card

    try:
        net, _, meta = load_checkpoint(model)
        updates: dict[str, object] = {"name": name, "description": description}
        if eval_files:
            updates["evaluations"] = [_read_json_file(f) for f in eval_files]
        if baselines:
            updates["baselines"] = [_baseline_summary(b) for b in baselines]
        if notes:
            updates["notes"] = [p.strip() for p in notes.read_text().split("\n\n") if p.strip()]
        meta.update({k: v for k, v in updates.items() if v is not None})
        save_card(model, net, meta)
    except (ValueError, OSError) as exc:
        fail(str(exc))
    typer.echo(str(model / "MODEL_CARD.md"))


def _read_json_file(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, dict) or "split" not in data:
        raise ValueError(f"{path}: not an `s2s eval` result (no split)")
    return data


def _baseline_summary(directory: Path) -> dict[str, object]:
    from s2s_core.checkpoint import load_checkpoint

    net, _, meta = load_checkpoint(directory)
    keep = ("command", "training", "best", "evaluations", "description")
    summary = {k: meta[k] for k in keep if k in meta}
    return {"name": meta.get("name", directory.name), "parameters": net.num_parameters(), **summary}
