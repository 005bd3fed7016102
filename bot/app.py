"""The python-telegram-bot Application around a ChatBot: polling or webhook, rate limiter,
logs that never show the token, and a start that waits for Telegram instead of exiting."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from telegram import Bot, Update
from telegram.error import InvalidToken, TelegramError
from telegram.ext import AIORateLimiter, Application, ApplicationBuilder

from bot.handlers import HEARTBEAT_S, ChatBot, touch_heartbeat

log = logging.getLogger(__name__)
COMMANDS = [
    ("help", "what I understand"),
    ("reset", "start a new conversation"),
    ("settings", "how I choose replies"),
    ("forget", "delete everything you told me"),
    ("about", "the model behind me"),
]


class RedactToken(logging.Filter):
    """Replaces the bot token wherever it would reach a log line (URLs in errors included)."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.token in message:
            record.msg, record.args = message.replace(self.token, "<token>"), None
        return True


def hide_token(token: str) -> None:
    """Installs the redaction on every handler and quiets httpx's per-request lines."""
    logging.getLogger("httpx").setLevel(logging.WARNING)
    redact = RedactToken(token)
    for handler in logging.getLogger().handlers:
        handler.addFilter(redact)


class MessageRateLimiter(AIORateLimiter):
    """Telegram's flood limits count messages; "typing…" must not queue behind a chat's
    replies (PTB's limiter holds every request that names a chat)."""

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, Any]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> Any:
        if endpoint == "sendChatAction":
            return await callback(*args, **kwargs)
        return await super().process_request(
            callback, args, kwargs, endpoint, data, rate_limit_args
        )


def build_application(
    token: str, api_url: str, chatbot: ChatBot
) -> Application[Any, Any, Any, Any, Any, Any]:
    async def post_init(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        try:
            await app.bot.set_my_commands(COMMANDS)
        except TelegramError as exc:  # the menu is a convenience: never a reason to stop
            log.warning("command menu not set (%s); the commands still work", exc)
        chatbot.start_delivery(app.bot)
        log.info("bot @%s ready", app.bot.username)

    async def post_shutdown(_: Application[Any, Any, Any, Any, Any, Any]) -> None:
        await chatbot.stop()

    app = (
        ApplicationBuilder()
        .token(token)
        .base_url(api_url)
        .rate_limiter(MessageRateLimiter(max_retries=5))  # the one owner of 429 retries
        .concurrent_updates(64)
        .connection_pool_size(64)
        .get_updates_connection_pool_size(2)
        .post_init(post_init)
        .post_shutdown(post_shutdown)
        .build()
    )
    chatbot.install(app)
    return app


async def wait_for_telegram(
    token: str,
    api_url: str,
    heartbeat_file: Path | None,
    first_delay_s: float = 1.0,
    max_delay_s: float = 60.0,
) -> str:
    """Asks Telegram ``getMe`` until it answers, waiting twice as long after each failure
    (up to ``max_delay_s``), and returns the bot's username.

    Why: python-telegram-bot exits when Telegram is unreachable at start-up, and under a
    container restart policy that is a crash loop. Waiting here keeps the process alive and
    its heartbeat fresh (healthy, not yet ready: nothing is polled), with one log line per
    attempt. A token Telegram refuses does not heal by waiting: ``InvalidToken`` is raised.
    """
    delay, attempt = first_delay_s, 1
    while True:
        touch_heartbeat(heartbeat_file)
        try:
            async with Bot(token, base_url=api_url) as probe:
                return probe.username
        except InvalidToken:
            raise
        except TelegramError as exc:
            log.warning(
                "Telegram unreachable (attempt %d: %s); next try in %.1f s", attempt, exc, delay
            )
        deadline = time.monotonic() + delay
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(left, HEARTBEAT_S))
            touch_heartbeat(heartbeat_file)
        delay, attempt = min(delay * 2, max_delay_s), attempt + 1


# Edits are not asked for: the first version was answered (see bot/handlers.py).
ALLOWED_UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY]
