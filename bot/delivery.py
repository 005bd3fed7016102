"""Replies on their way to people: "typing…" while a message waits, one apology if it waits
too long (the late reply is still delivered), and each reply sent once, in its chat's order,
as a reply to the user's message with the vote buttons."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from telegram import Bot
from telegram.constants import ChatAction
from telegram.error import BadRequest, Forbidden, TelegramError

from bot.sender import send
from bot.texts import BUSY, TRUNCATED, printable, split_message
from bot.transport import ChatState, Delivery, Transport
from bot.votes import VoteSigner
from s2s_contract.tasks import ReplyEvent

log = logging.getLogger(__name__)
SEND_CONCURRENCY = 64
TRUNCATED_NOTES_KEPT = 10_000
Spawn = Callable[..., "asyncio.Task[Any]"]


@dataclass
class ReplyDelivery:
    transport: Transport
    state: ChatState
    votes: VoteSigner
    counters: Counter[str]
    spawn: Spawn  # the bot's task set: stopped together, "deliver" tasks given grace
    reply_timeout_s: float
    typing_every_s: float

    def __post_init__(self) -> None:
        self._waiting: dict[tuple[int, int], asyncio.Event] = {}
        self._truncated: dict[tuple[int, int], int] = {}
        # One lock per chat with deliveries in flight, and how many hold or await it: the
        # lock goes only when none do (a released lock may still have a waiter queued).
        self._chat_locks: dict[int, tuple[asyncio.Lock, int]] = {}
        self._typing_at: dict[int, float] = {}  # chat → when "typing…" was last sent
        self._send_slots = asyncio.Semaphore(SEND_CONCURRENCY)

    # --- a message waiting for its reply ----------------------------------------------------

    def expect(self, chat_id: int, message_id: int, truncated_to: int | None) -> None:
        """A message is about to be queued: its reply will be waited for (and say that the
        message was cut to ``truncated_to`` characters, if it was)."""
        self._waiting[(chat_id, message_id)] = asyncio.Event()
        if truncated_to:
            if len(self._truncated) >= TRUNCATED_NOTES_KEPT:  # replies that never came
                self._truncated.pop(next(iter(self._truncated)))
            self._truncated[(chat_id, message_id)] = truncated_to

    def not_queued(self, chat_id: int, message_id: int) -> None:
        self._waiting.pop((chat_id, message_id), None)
        self._truncated.pop((chat_id, message_id), None)

    def show_typing(self, bot: Bot, chat_id: int, message_id: int) -> None:
        self.spawn(self._typing_until_answered(bot, chat_id, message_id))

    async def _typing_until_answered(self, bot: Bot, chat_id: int, message_id: int) -> None:
        key = (chat_id, message_id)
        answered = self._waiting[key]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.reply_timeout_s
        try:
            while not answered.is_set() and loop.time() < deadline:
                await self._typing(bot, chat_id, loop.time())
                wait = min(self.typing_every_s, deadline - loop.time())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(answered.wait(), max(wait, 0.0))
            if not answered.is_set() and not await self.state.delivered(chat_id, message_id):
                self.counters["apologies"] += 1
                await send(bot, chat_id, BUSY, reply_to=message_id)
        finally:
            self._waiting.pop(key, None)
            if not any(chat == chat_id for chat, _ in self._waiting):
                self._typing_at.pop(chat_id, None)

    async def _typing(self, bot: Bot, chat_id: int, now: float) -> None:
        """One "typing…" per chat per interval, however many of its messages wait."""
        if now - self._typing_at.get(chat_id, -1e9) < self.typing_every_s - 0.5:
            return
        self._typing_at[chat_id] = now
        try:
            await bot.send_chat_action(chat_id, ChatAction.TYPING)
        except TelegramError as exc:
            log.debug("typing failed: %s", exc)

    # --- replies coming back ------------------------------------------------------------------

    async def deliver_forever(self, bot: Bot) -> None:
        async for delivery in self.transport.replies():
            await self._send_slots.acquire()
            self.spawn(self._deliver(bot, delivery), name="deliver")

    async def _deliver(self, bot: Bot, delivery: Delivery) -> None:
        event = delivery.event
        lock, users = self._chat_locks.get(event.chat_id, (asyncio.Lock(), 0))
        self._chat_locks[event.chat_id] = (lock, users + 1)
        try:
            async with lock:  # one chat's replies go out in order
                if not await self.state.delivered(event.chat_id, event.message_id):
                    await self._send_reply(bot, event)
                    await self.state.mark_delivered(event.chat_id, event.message_id)
                    self.counters["replies delivered"] += 1
                await delivery.ack()
                answered = self._waiting.get((event.chat_id, event.message_id))
                if answered is not None:
                    answered.set()
        except (BadRequest, Forbidden) as exc:
            # Permanent (the user blocked the bot, the chat is gone): drop it, don't retry.
            log.error("reply to chat %s refused: %s", event.chat_id, exc)
            await delivery.ack()
        except TelegramError as exc:
            # Left unacknowledged: a running bot claims it again (see bot/redis_transport.py).
            log.error("reply to chat %s not delivered: %s", event.chat_id, exc)
        except Exception:
            log.exception("reply to chat %s not delivered", event.chat_id)
        finally:
            self._send_slots.release()
            lock, users = self._chat_locks[event.chat_id]
            if users == 1:
                del self._chat_locks[event.chat_id]
            else:
                self._chat_locks[event.chat_id] = (lock, users - 1)

    async def _send_reply(self, bot: Bot, event: ReplyEvent) -> None:
        text = printable(event.text) or "…"
        cut = self._truncated.pop((event.chat_id, event.message_id), None)
        if cut:
            text = f"{TRUNCATED.format(n=cut)}\n\n{text}"
        parts = split_message(text)
        answered = event.user_id if event.user_id is not None else event.chat_id
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            await send(
                bot,
                event.chat_id,
                part,
                reply_to=event.message_id if i == 0 else None,
                markup=self.votes.buttons(event.bot_turn_id, answered) if last else None,
            )
