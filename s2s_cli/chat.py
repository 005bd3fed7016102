"""``s2s chat``: talk to a model in the terminal, through the same reply service the worker
runs (context from the store, batched decoding, candidate choice, storage), in-process:
no Celery, no Redis. History lives in DATABASE_URL (SQLite under var/ by default) and
survives between runs.

Interactive on a terminal (a prompt); otherwise one utterance per input line and exactly one
reply per output line, nothing else on stdout. ``/reset`` starts a new conversation and
``/quit`` ends, in both (piped, ``/reset`` answers with an empty line), so a script can hold
several conversations.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from s2s_cli.options import Device, fail, one_line
from s2s_contract.settings import ConfigError, load_settings
from s2s_contract.styles import DEFAULT_STYLE, Style, parse_style

LOCAL_CHAT = 1  # the terminal is one private chat with one user


class LocalChat:
    def __init__(self, model_dir: Path | None, style: str, device: str) -> None:
        """``model_dir`` None: what the bot and the workers serve (the registry's active
        version, else MODEL_DIR), so the terminal and Telegram give one product's answers."""
        from worker.engine import Engine, default_source
        from worker.runtime import registry_source
        from worker.service import ReplyService
        from worker.store import DialogueStore
        from worker.store.migrate import upgrade

        settings = load_settings()
        if settings.database_url.startswith("sqlite"):
            upgrade(settings.database_url)  # the embedded default sets itself up
        store = DialogueStore(settings.database_url)
        if model_dir is not None:
            source, why = default_source(model_dir), "--model"
        else:
            active = _active_model(store)
            if active is None:
                default_source(settings.model_dir)  # raises: says what is missing where
            source = registry_source(store, settings)
            why = "the registry's active version" if active else "MODEL_DIR"
        engine = Engine(source, device, corpus_cache=settings.retrieval_dir)
        self.version = engine.loaded().version  # fail now, not at the first message
        typer.echo(f"serving model {self.version[:12]} ({why})", err=True)
        self.service = ReplyService(store, engine, publisher=None)
        self.style = style
        self.message_id = store.last_message_id(LOCAL_CHAT)

    def reply(self, text: str) -> str:
        from s2s_contract.tasks import MAX_TEXT, ReplyRequest

        self.message_id += 1
        request = ReplyRequest.model_validate(
            {
                "chat_id": LOCAL_CHAT,
                "user_id": LOCAL_CHAT,
                "message_id": self.message_id,
                "text": text[:MAX_TEXT],
                "style": self.style,
            }
        )
        return one_line(self.service.reply(request).text)

    def reset(self) -> None:
        from s2s_contract.tasks import ResetRequest

        self.service.reset(ResetRequest(chat_id=LOCAL_CHAT))


def _active_model(store: Any) -> tuple[str, str] | None:
    """The registry's active version, or a one-line exit when the database cannot be read
    (PostgreSQL is not set up by the first run, as the embedded SQLite is)."""
    from s2s_cli.db import run_db_action

    try:
        return run_db_action(store.registry.active_model)
    except typer.Exit:
        store.engine.dispose()  # close the pooled connection before the one-line exit
        raise


def chat(
    model: Annotated[
        Path | None,
        typer.Option(
            help="Checkpoint folder; by default what the bot serves: the registry's active "
            "version, else MODEL_DIR (models/default)."
        ),
    ] = None,
    style: Annotated[str, typer.Option(help=" | ".join(Style))] = DEFAULT_STYLE.value,
    device: Device = "auto",
) -> None:
    """Chat with a model in the terminal (one reply per line when stdin is not a terminal)."""
    try:
        parse_style(style)
    except ValueError as exc:
        fail(str(exc))
    try:
        conversation = LocalChat(model, style, device)
    except ConfigError as exc:
        fail(str(exc))
    except (ValueError, OSError) as exc:
        fail(f"{exc} (train one with `s2s train`, or set MODEL_DIR)")
    interactive = sys.stdin.isatty()
    if interactive:
        typer.echo("Talk to the bot. /reset starts over, /quit leaves.", err=True)
    while True:
        try:
            line = input("you> " if interactive else "")
        except EOFError:
            break
        text = line.strip()
        if text == "/quit":
            break
        if text == "/reset":  # piped too: a script can hold several conversations
            conversation.reset()
            if not interactive:
                typer.echo("")  # keep one output line per input line
            continue
        if not text:
            if not interactive:
                typer.echo("")  # keep one output line per input line
            continue
        answer = conversation.reply(text)
        typer.echo(f"bot> {answer}" if interactive else answer)
