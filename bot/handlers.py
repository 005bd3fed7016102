"""The Telegram side, wired in one place: text intake here, and the rooms it hands off to
(bot/commands.py, bot/buttons.py, bot/delivery.py; what it says: bot/texts.py).

A text message is validated, deduplicated (Telegram re-sends updates), rate-limited and handed
to the transport; "typing…" shows until its reply is delivered or the patience runs out (then
one apology; a late reply is still delivered). Replies come back through the transport's
stream and go out as replies to the user's message with 👍/👎 buttons.

Edited messages are ignored: the first version was already answered, and answering again
would put two replies on one message. Group chats are answered only when the bot is mentioned
or replied to.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from telegram import Bot, Message, Update
from telegram.constants import ChatType, MessageEntityType
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.buttons import Buttons
from bot.commands import Commands
from bot.config import BotConfig
from bot.delivery import ReplyDelivery
from bot.sender import say
from bot.texts import DOWN, RATE_LIMITED, TEXT_ONLY, clean_text
from bot.transport import ChatState, RateLimiter, Transport, TransportDown
from bot.votes import VoteSigner
from s2s_contract.styles import DEFAULT_STYLE
from s2s_contract.tasks import ReplyRequest

log = logging.getLogger(__name__)
HEARTBEAT_S = 10.0
STOP_GRACE_S = 10.0  # replies being sent when the bot stops get this long


@dataclass
class ChatBot:
    config: BotConfig
    transport: Transport
    state: ChatState
    votes: VoteSigner = field(default_factory=lambda: VoteSigner.for_token(None))
    counters: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.limiter = RateLimiter(self.config.rate_limit)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._consumer: asyncio.Task[Any] | None = None
        self.delivery = ReplyDelivery(
            self.transport,
            self.state,
            self.votes,
            self.counters,
            self._spawn,
            self.config.reply_timeout_s,
            self.config.typing_every_s,
        )
        self.commands = Commands(self.config, self.transport, self.state, self.counters)
        self.buttons = Buttons(self.transport, self.state, self.votes, self.counters)

    # --- wiring ---------------------------------------------------------------------------------

    def install(self, app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        new_messages = filters.UpdateType.MESSAGE
        c = self.commands
        commands = {
            "start": c.start,
            "help": c.help,
            "reset": c.reset,
            "forget": c.forget,
            "settings": c.settings,
            "about": c.about,
            "stats": c.stats,
        }
        for name, callback in commands.items():
            app.add_handler(CommandHandler(name, callback, filters=new_messages))
        app.add_handler(MessageHandler(new_messages & filters.TEXT & ~filters.COMMAND, self.text))
        app.add_handler(MessageHandler(new_messages & ~filters.TEXT, self.not_text))
        app.add_handler(CallbackQueryHandler(self.buttons.press))

    def start_delivery(self, bot: Bot) -> None:
        self._consumer = self._spawn(self.delivery.deliver_forever(bot), name="consumer")
        if self.config.heartbeat_file is not None:
            self._spawn(self._heartbeat(self.config.heartbeat_file))

    @staticmethod
    async def _heartbeat(path: Path) -> None:
        """Proof of a live event loop for a container healthcheck (``find -mmin``)."""
        while True:
            touch_heartbeat(path)
            await asyncio.sleep(HEARTBEAT_S)

    async def stop(self) -> None:
        """Stops taking replies, lets the ones being sent finish (a bounded wait; anything
        cut off stays unacknowledged and is sent after a restart), then stops the rest."""
        if self._consumer is not None:
            self._consumer.cancel()
        sending = [t for t in self._tasks if t.get_name().startswith("deliver")]
        if sending:
            await asyncio.wait(sending, timeout=STOP_GRACE_S)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.transport.close()

    def _spawn(self, coro: Any, name: str = "task") -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- text in --------------------------------------------------------------------------------

    async def text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if message is None or message.from_user is None or not self.config.allows(update):
            return
        raw = message.text or ""
        if _in_group(message):
            addressed, raw = _addressed(message, context.bot)
            if not addressed:
                return
        text = clean_text(raw)
        if not text:
            return
        chat_id, user_id, message_id = message.chat.id, message.from_user.id, message.message_id
        try:
            if await self.state.seen(chat_id, message_id):
                self.counters["repeated updates"] += 1
                return
        except TransportDown:
            await say(context.bot, message, DOWN)
            return
        if not self.limiter.allow(user_id):
            self.counters["rate limited"] += 1
            if self.limiter.should_notify(user_id):
                await say(context.bot, message, RATE_LIMITED)
            return
        truncated_to = None
        if len(text) > self.config.max_input_chars:
            text = text[-self.config.max_input_chars :].lstrip()
            truncated_to = self.config.max_input_chars
        request = ReplyRequest(
            chat_id=chat_id,
            user_id=user_id,
            message_id=message_id,
            text=text,
            style=await self.state.style(chat_id) or DEFAULT_STYLE,  # type: ignore[arg-type]
            chat_type="group" if _in_group(message) else "private",
            username=(message.from_user.username or "")[:64] or None,
            language=(message.from_user.language_code or "")[:16] or None,  # a client's oddity
            enqueued_at=time.time(),
        )
        self.delivery.expect(chat_id, message_id, truncated_to)
        try:
            await self.transport.ask(request)
        except TransportDown as exc:
            log.warning("transport down: %s", type(exc).__name__)
            self.delivery.not_queued(chat_id, message_id)
            self.counters["transport down"] += 1
            await say(context.bot, message, DOWN)
            return
        # Marked only now that it is queued: a bot killed before this point answers the
        # redelivered update; one killed after it queued twice, which the worker (one stored
        # reply per message) and the delivered marker (one sent) absorb.
        try:
            await self.state.mark_seen(chat_id, message_id)
        except TransportDown as exc:
            log.warning("message queued but not marked seen: %s", type(exc).__name__)
        self.counters["messages"] += 1
        self.delivery.show_typing(context.bot, chat_id, message_id)

    async def not_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if message is None or not self.config.allows(update):
            return
        if _in_group(message):
            replied = message.reply_to_message
            if not (replied and replied.from_user and replied.from_user.id == context.bot.id):
                return
        await say(context.bot, message, TEXT_ONLY)


def _in_group(message: Message) -> bool:
    return message.chat.type in (ChatType.GROUP, ChatType.SUPERGROUP)


def _addressed(message: Message, bot: Bot) -> tuple[bool, str]:
    """In a group: whether the bot is mentioned or replied to, and the text sans mention."""
    text = message.text or ""
    replied = message.reply_to_message
    to_bot = bool(replied and replied.from_user and replied.from_user.id == bot.id)
    mention = f"@{bot.username}".lower()
    mentioned = any(
        entity.type == MessageEntityType.MENTION and value.lower() == mention
        for entity, value in message.parse_entities([MessageEntityType.MENTION]).items()
    )
    if mentioned:
        lowered = text.lower()
        at = lowered.find(mention)
        text = text[:at] + text[at + len(mention) :]
    return to_bot or mentioned, text


def touch_heartbeat(path: Path | None) -> None:
    """Writes the time into the heartbeat file a container healthcheck reads (if set)."""
    if path is None:
        return
    try:
        path.write_text(str(time.time()))
    except OSError as exc:
        log.warning("heartbeat file %s: %s", path, exc)
