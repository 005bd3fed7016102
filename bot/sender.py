"""Sending messages to Telegram: retried on flood control and network errors, never on a
permanent refusal (a blocked bot, a deleted chat)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from telegram import Bot, InlineKeyboardMarkup, Message, ReplyParameters
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError

log = logging.getLogger(__name__)
SEND_RETRIES = 8


async def send(
    bot: Bot,
    chat_id: int,
    text: str,
    reply_to: int | None = None,
    markup: InlineKeyboardMarkup | None = None,
) -> None:
    """sendMessage, retried on flood control and network errors with backoff."""
    reply = ReplyParameters(reply_to, allow_sending_without_reply=True) if reply_to else None
    delay = 0.5
    for attempt in range(SEND_RETRIES):
        try:
            await bot.send_message(chat_id, text, reply_parameters=reply, reply_markup=markup)
            return
        except RetryAfter as exc:
            await asyncio.sleep(_seconds(exc.retry_after))
        except (BadRequest, Forbidden):
            raise  # permanent: a blocked bot, a deleted chat
        except TelegramError as exc:
            if attempt == SEND_RETRIES - 1:
                raise
            log.warning("send failed (%s); retrying in %.1f s", type(exc).__name__, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
    raise TelegramError("flood control did not let the reply through")


async def say(bot: Bot, message: Message, text: str) -> None:
    """A notice in reply to ``message``; one that cannot be sent is logged, not raised."""
    try:
        await send(bot, message.chat.id, text, reply_to=message.message_id)
    except TelegramError as exc:
        log.warning("notice not sent: %s", exc)


def _seconds(value: Any) -> float:
    return float(value.total_seconds()) if hasattr(value, "total_seconds") else float(value)
