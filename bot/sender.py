"""Sending messages to Telegram: network errors retried here with backoff; flood control
(429 RetryAfter) is the rate limiter's (bot/app.py: python-telegram-bot's AIORateLimiter waits
and retries); a permanent refusal (a blocked bot, a deleted chat) is never retried."""

from __future__ import annotations

import asyncio
import logging

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
    """sendMessage, retried on network errors with backoff."""
    reply = ReplyParameters(reply_to, allow_sending_without_reply=True) if reply_to else None
    delay = 0.5
    for attempt in range(SEND_RETRIES):
        try:
            await bot.send_message(chat_id, text, reply_parameters=reply, reply_markup=markup)
            return
        except (BadRequest, Forbidden, RetryAfter):
            # Permanent (a blocked bot, a deleted chat), or flood control the rate limiter
            # already retried: a reply stays unacknowledged and is claimed again later.
            raise
        except TelegramError as exc:
            if attempt == SEND_RETRIES - 1:
                raise
            log.warning("send failed (%s); retrying in %.1f s", type(exc).__name__, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)


async def say(bot: Bot, message: Message, text: str) -> None:
    """A notice in reply to ``message``; one that cannot be sent is logged, not raised."""
    try:
        await send(bot, message.chat.id, text, reply_to=message.message_id)
    except TelegramError as exc:
        log.warning("notice not sent: %s", exc)
