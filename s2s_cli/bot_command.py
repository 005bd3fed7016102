"""``s2s bot``: the Telegram bot, wired to the worker through Celery (REDIS_URL set) or, with
no REDIS_URL, to the reply service in-process (SQLite history, one command, no services)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated

import typer

from s2s_cli.options import fail

if TYPE_CHECKING:
    from bot.transport import ChatState, Transport
    from s2s_contract.settings import Settings

log = logging.getLogger(__name__)


def bot(
    webhook_url: Annotated[
        str | None,
        typer.Option(help="Public HTTPS URL Telegram posts updates to (default: long polling)."),
    ] = None,
    listen: Annotated[str, typer.Option(help="Webhook mode: address to listen on.")] = "0.0.0.0",
    port: Annotated[int, typer.Option(help="Webhook mode: port to listen on.")] = 8443,
    threads: Annotated[
        int, typer.Option(help="Single-process mode: threads answering at once.")
    ] = 8,
) -> None:
    """Run the Telegram bot (TELEGRAM_TOKEN; TELEGRAM_API_URL for a self-hosted Bot API)."""
    from bot.app import ALLOWED_UPDATES, build_application, hide_token
    from bot.config import BotConfig
    from bot.handlers import ChatBot
    from bot.votes import VoteSigner
    from s2s_contract.settings import ConfigError, load_settings

    try:
        settings = load_settings()
    except ConfigError as exc:
        fail(f"bad configuration: {exc}")
    token = settings.telegram_token
    if not token:
        fail("TELEGRAM_TOKEN is not set (the token @BotFather gave you)")
    if webhook_url and not settings.telegram_webhook_secret:
        fail("webhook mode needs TELEGRAM_WEBHOOK_SECRET (Telegram sends it with every update)")
    hide_token(token)
    _wait_for_telegram(token, settings)
    transport, state = _transport(settings, threads)
    votes = VoteSigner.for_token(token)
    chatbot = ChatBot(BotConfig.from_settings(settings), transport, state, votes)
    app = build_application(token, settings.telegram_api_url, chatbot)
    if webhook_url:
        app.run_webhook(
            listen=listen,
            port=port,
            url_path="telegram",
            webhook_url=webhook_url,
            secret_token=settings.telegram_webhook_secret,
            allowed_updates=ALLOWED_UPDATES,
        )
    else:
        app.run_polling(allowed_updates=ALLOWED_UPDATES, close_loop=False)


def _wait_for_telegram(token: str, settings: Settings) -> None:
    """Blocks until Telegram answers (see ``bot.app.wait_for_telegram``); a refused token
    ends the command with one line."""
    import asyncio

    from telegram.error import InvalidToken

    from bot.app import wait_for_telegram

    try:
        asyncio.run(
            wait_for_telegram(
                token,
                settings.telegram_api_url,
                settings.bot_heartbeat_file,
            )
        )
    except InvalidToken:
        fail("Telegram refused TELEGRAM_TOKEN: check it with @BotFather")


def _transport(settings: Settings, threads: int) -> tuple[Transport, ChatState]:
    if settings.redis_url:
        from bot.redis_transport import RedisState, RedisTransport

        log.info("answering through Celery workers")
        return RedisTransport(settings.redis_url), RedisState(settings.redis_url)
    from bot.transport import MemoryState
    from worker.local_transport import LocalTransport
    from worker.runtime import serving_engine
    from worker.service import ReplyService
    from worker.store import DialogueStore
    from worker.store.migrate import upgrade

    log.info("single-process mode (no REDIS_URL): answering in-process")
    try:
        if settings.database_url.startswith("sqlite"):
            upgrade(settings.database_url)
        store = DialogueStore(settings.database_url)
        engine = serving_engine(store, settings)
        engine.loaded()  # fail now, not at the first message
    except (ValueError, OSError) as exc:
        fail(f"{exc} (set MODEL_DIR to a checkpoint)")
    return LocalTransport(ReplyService(store, engine, publisher=None), threads), MemoryState()
