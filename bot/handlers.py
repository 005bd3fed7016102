"""The Telegram side: commands, text, buttons, and delivering replies.

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
import contextlib
import logging
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    ReplyParameters,
    Update,
)
from telegram.constants import ChatAction, ChatType, MessageEntityType
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.transport import ChatState, Delivery, RateLimiter, Transport, TransportDown
from bot.votes import VoteSigner
from s2s_contract.settings import Settings, parse_ids
from s2s_contract.styles import DEFAULT_STYLE, DESCRIPTIONS, Style
from s2s_contract.tasks import MAX_TEXT, FeedbackRequest, ForgetRequest, ReplyEvent, ReplyRequest

log = logging.getLogger(__name__)

GREETING = (
    "Hi! I am a small open-source chatbot: a sequence-to-sequence neural network (an LSTM "
    "encoder-decoder with attention) trained on casual conversations. Just write to me.\n\n"
    "/help lists what I understand."
)
HELP = (
    "Write anything and I will answer; I read the last few turns of our chat.\n\n"
    "/reset – start a new conversation\n"
    "/settings – how I choose replies\n"
    "/forget – delete everything you told me\n"
    "/about – the model behind me\n\n"
    "Rate my replies with 👍/👎: it helps train the next model."
)
TEXT_ONLY = "I can only read text messages, sorry. Write to me in words!"
BUSY = "This is taking longer than usual: your reply is on its way, no need to send again."
DOWN = "Sorry, I can't think right now: my reply service is unreachable. Try again soon."
RATE_LIMITED = "You are writing faster than I can think. Give me a minute, please."
TRUNCATED = "(Your message was long: I read only its last {n} characters.)"
RESET_DONE = "Fresh start: I have forgotten our conversation so far."
FORGET_ASK = "Delete everything you have told me (all your messages and my replies to them)?"
FORGET_DONE = "Done: your messages and my replies are being deleted from my history."
FORGET_KEPT = "Nothing was deleted."
SEND_CONCURRENCY = 64
SEND_RETRIES = 8
HEARTBEAT_S = 10.0
STOP_GRACE_S = 10.0  # replies being sent when the bot stops get this long
TRUNCATED_NOTES_KEPT = 10_000


@dataclass(frozen=True)
class BotConfig:
    admin_ids: frozenset[int] = frozenset()
    allowed_chat_ids: frozenset[int] = frozenset()  # empty: every chat
    rate_limit: int = 20  # messages per user per minute
    reply_timeout_s: float = 30.0  # "typing…" this long at most, then one apology
    typing_every_s: float = 4.0  # Telegram shows "typing" for 5 s
    max_input_chars: int = 500
    heartbeat_file: Path | None = None  # touched every HEARTBEAT_S while the loop runs

    @classmethod
    def from_settings(cls, settings: Settings) -> BotConfig:
        return cls(
            admin_ids=parse_ids(settings.admin_ids),
            allowed_chat_ids=parse_ids(settings.allowed_chat_ids),
            rate_limit=settings.bot_rate_limit,
            reply_timeout_s=settings.bot_reply_timeout_s,
            max_input_chars=settings.bot_max_input_chars,
            heartbeat_file=settings.bot_heartbeat_file,
        )


def clean_text(text: str) -> str:
    """Control and format characters go (newlines and tabs become spaces); trimmed."""
    kept = []
    for ch in text:
        category = unicodedata.category(ch)
        if ch in "\n\t\r" or category in ("Zl", "Zp"):
            kept.append(" ")
        elif category in ("Cc", "Cs") or (category == "Cf" and ch != "\u200d"):
            continue  # lone surrogates cannot be encoded; keep the zero-width joiner (emoji)
        else:
            kept.append(ch)
    return " ".join("".join(kept).split())


def printable(text: str) -> str:
    """A reply as sent: control characters a byte-level model may emit become spaces."""
    return " ".join("".join(" " if unicodedata.category(c) == "Cc" else c for c in text).split())


def split_message(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Telegram's 4,096-character limit: cut at the last space before it where there is one."""
    parts = []
    while len(text) > limit:
        cut = text.rfind(" ", 0, limit)
        cut = cut if cut > limit // 2 else limit
        parts.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    return [*parts, text] if text else parts


@dataclass
class ChatBot:
    config: BotConfig
    transport: Transport
    state: ChatState
    votes: VoteSigner = field(default_factory=lambda: VoteSigner.for_token(None))
    counters: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.limiter = RateLimiter(self.config.rate_limit)
        self._waiting: dict[tuple[int, int], asyncio.Event] = {}
        self._truncated: dict[tuple[int, int], int] = {}
        # One lock per chat with deliveries in flight, and how many hold or await it: the
        # lock goes only when none do (a released lock may still have a waiter queued).
        self._chat_locks: dict[int, tuple[asyncio.Lock, int]] = {}
        self._typing_at: dict[int, float] = {}  # chat → when "typing…" was last sent
        self._tasks: set[asyncio.Task[Any]] = set()
        self._send_slots = asyncio.Semaphore(SEND_CONCURRENCY)
        self._started = time.time()
        self._consumer: asyncio.Task[Any] | None = None

    # --- wiring ---------------------------------------------------------------------------------

    def install(self, app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        new_messages = filters.UpdateType.MESSAGE
        commands = {
            "start": self.start,
            "help": self.help,
            "reset": self.reset,
            "forget": self.forget,
            "settings": self.settings,
            "about": self.about,
            "stats": self.stats,
        }
        for name, callback in commands.items():
            app.add_handler(CommandHandler(name, callback, filters=new_messages))
        app.add_handler(MessageHandler(new_messages & filters.TEXT & ~filters.COMMAND, self.text))
        app.add_handler(MessageHandler(new_messages & ~filters.TEXT, self.not_text))
        app.add_handler(CallbackQueryHandler(self.button))

    def start_delivery(self, bot: Bot) -> None:
        self._consumer = self._spawn(self._deliver_forever(bot), name="consumer")
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

    # --- who is addressed -----------------------------------------------------------------------

    def _allowed(self, update: Update) -> bool:
        chat = update.effective_chat
        allowed = self.config.allowed_chat_ids
        return chat is not None and (not allowed or chat.id in allowed)

    @staticmethod
    def _in_group(message: Message) -> bool:
        return message.chat.type in (ChatType.GROUP, ChatType.SUPERGROUP)

    @staticmethod
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

    # --- text -------------------------------------------------------------------------------------

    async def text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if message is None or message.from_user is None or not self._allowed(update):
            return
        raw = message.text or ""
        if self._in_group(message):
            addressed, raw = self._addressed(message, context.bot)
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
            await self._say(context.bot, message, DOWN)
            return
        if not self.limiter.allow(user_id):
            self.counters["rate limited"] += 1
            if self.limiter.should_notify(user_id):
                await self._say(context.bot, message, RATE_LIMITED)
            return
        if len(text) > self.config.max_input_chars:
            text = text[-self.config.max_input_chars :].lstrip()
            if len(self._truncated) >= TRUNCATED_NOTES_KEPT:  # replies that never came
                self._truncated.pop(next(iter(self._truncated)))
            self._truncated[(chat_id, message_id)] = self.config.max_input_chars
        request = ReplyRequest(
            chat_id=chat_id,
            user_id=user_id,
            message_id=message_id,
            text=text,
            style=await self.state.style(chat_id) or DEFAULT_STYLE,  # type: ignore[arg-type]
            chat_type="group" if self._in_group(message) else "private",
            username=(message.from_user.username or "")[:64] or None,
            language=(message.from_user.language_code or "")[:16] or None,  # a client's oddity
            enqueued_at=time.time(),
        )
        key = (chat_id, message_id)
        self._waiting[key] = asyncio.Event()
        try:
            await self.transport.ask(request)
        except TransportDown as exc:
            log.warning("transport down: %s", type(exc).__name__)
            self._waiting.pop(key, None)
            self.counters["transport down"] += 1
            await self._say(context.bot, message, DOWN)
            return
        # Marked only now that it is queued: a bot killed before this point answers the
        # redelivered update; one killed after it queued twice, which the worker (one stored
        # reply per message) and the delivered marker (one sent) absorb.
        try:
            await self.state.mark_seen(chat_id, message_id)
        except TransportDown as exc:
            log.warning("message queued but not marked seen: %s", type(exc).__name__)
        self.counters["messages"] += 1
        self._spawn(self._typing_until_answered(context.bot, chat_id, message_id))

    async def _typing_until_answered(self, bot: Bot, chat_id: int, message_id: int) -> None:
        key = (chat_id, message_id)
        answered = self._waiting[key]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.reply_timeout_s
        try:
            while not answered.is_set() and loop.time() < deadline:
                await self._typing(bot, chat_id, loop.time())
                wait = min(self.config.typing_every_s, deadline - loop.time())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(answered.wait(), max(wait, 0.0))
            if not answered.is_set() and not await self.state.delivered(chat_id, message_id):
                self.counters["apologies"] += 1
                await self._send(bot, chat_id, BUSY, reply_to=message_id)
        finally:
            self._waiting.pop(key, None)
            if not any(chat == chat_id for chat, _ in self._waiting):
                self._typing_at.pop(chat_id, None)

    async def _typing(self, bot: Bot, chat_id: int, now: float) -> None:
        """One "typing…" per chat per interval, however many of its messages wait."""
        if now - self._typing_at.get(chat_id, -1e9) < self.config.typing_every_s - 0.5:
            return
        self._typing_at[chat_id] = now
        try:
            await bot.send_chat_action(chat_id, ChatAction.TYPING)
        except TelegramError as exc:
            log.debug("typing failed: %s", exc)

    async def not_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if message is None or not self._allowed(update):
            return
        if self._in_group(message):
            replied = message.reply_to_message
            if not (replied and replied.from_user and replied.from_user.id == context.bot.id):
                return
        await self._say(context.bot, message, TEXT_ONLY)

    # --- delivery ---------------------------------------------------------------------------------

    async def _deliver_forever(self, bot: Bot) -> None:
        async for delivery in self.transport.replies():
            await self._send_slots.acquire()
            self._spawn(self._deliver(bot, delivery), name="deliver")

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
            # Left unacknowledged: a restarted bot picks it up from its backlog.
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
            await self._send(
                bot,
                event.chat_id,
                part,
                reply_to=event.message_id if i == 0 else None,
                markup=self.votes.buttons(event.bot_turn_id, answered) if last else None,
            )

    async def _send(
        self,
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

    async def _say(self, bot: Bot, message: Message, text: str) -> None:
        try:
            await self._send(bot, message.chat.id, text, reply_to=message.message_id)
        except TelegramError as exc:
            log.warning("notice not sent: %s", exc)

    # --- commands ---------------------------------------------------------------------------------

    async def start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.message and self._allowed(update):
            await self._say(context.bot, update.message, GREETING)

    async def help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.message and self._allowed(update):
            await self._say(context.bot, update.message, HELP)

    async def reset(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if message is None or not self._allowed(update):
            return
        try:
            await self.transport.reset(message.chat.id)
        except TransportDown:
            await self._say(context.bot, message, DOWN)
            return
        await self._say(context.bot, message, RESET_DONE)

    async def forget(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if message is None or message.from_user is None or not self._allowed(update):
            return
        buttons = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton("Yes, delete", callback_data="forget:yes"),
                    InlineKeyboardButton("No", callback_data="forget:no"),
                ]
            ]
        )
        await self._send(
            context.bot, message.chat.id, FORGET_ASK, reply_to=message.message_id, markup=buttons
        )

    async def settings(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if message is None or not self._allowed(update):
            return
        current = await self.state.style(message.chat.id) or DEFAULT_STYLE
        await self._send(
            context.bot,
            message.chat.id,
            "How should I choose my replies?\n\n" + "\n".join(DESCRIPTIONS.values()),
            reply_to=message.message_id,
            markup=_style_buttons(current),
        )

    async def about(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if message is None or not self._allowed(update):
            return
        try:
            info = await self.transport.model_info()
        except TransportDown:
            info = None
        if not info:
            text = "An LSTM encoder-decoder chatbot. The serving model has not answered yet."
        else:
            lines = [str(info.get("name", "Seq2Seq model")), f"version {info['version'][:12]}"]
            if info.get("test_perplexity"):
                lines.append(f"test perplexity {info['test_perplexity']:.1f}")
            steps = info.get("trained_steps")
            if steps:
                verb = "fine-tuned" if info.get("fine_tuned") else "trained"
                lines.append(f"{verb} for {steps:,} step{'' if steps == 1 else 's'}")
            text = "\n".join(lines)
        await self._say(context.bot, message, text)

    async def stats(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if message is None or message.from_user is None:
            return
        if message.from_user.id not in self.config.admin_ids:
            return  # not advertised; others get no answer
        try:
            numbers = await self.transport.stats()
        except TransportDown:
            numbers = {"transport": "down"}
        uptime = {"uptime (min)": round((time.time() - self._started) / 60, 1)}
        rows = {**uptime, **self.counters, **numbers}
        await self._say(context.bot, message, "\n".join(f"{k}: {v}" for k, v in rows.items()))

    # --- buttons ----------------------------------------------------------------------------------

    async def button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None:
            return
        if query.data is None:  # a game button or a client's oddity: answered, nothing done
            await query.answer()
            return
        kind, _, rest = query.data.partition(":")
        try:
            if kind == "fb":
                await self._vote(query, rest)
            elif kind == "style":
                await self._choose_style(query, rest)
            elif kind == "forget":
                await self._confirm_forget(query, rest)
            else:
                await query.answer()
        except TransportDown:
            await query.answer(DOWN, show_alert=True)

    async def _vote(self, query: Any, rest: str) -> None:
        vote = self.votes.read(rest, query.from_user.id)
        if isinstance(vote, str):
            self.counters["votes_refused"] += 1
            await query.answer(vote)
            return
        request = FeedbackRequest(
            turn_id=vote.turn_id, user_id=query.from_user.id, value=vote.value
        )
        await self.transport.feedback(request)  # TransportDown: answered once, by button()
        await query.answer("Thanks for the feedback!")
        self.counters["votes"] += 1
        markup = self.votes.buttons(request.turn_id, request.user_id, request.value)
        try:
            await query.edit_message_reply_markup(markup)
        except TelegramError as exc:
            log.debug("vote mark not shown: %s", exc)

    async def _choose_style(self, query: Any, style: str) -> None:
        if style not in set(Style) or query.message is None:
            await query.answer()
            return
        await self.state.set_style(query.message.chat.id, style)
        await query.answer(f"Style: {style}")
        try:
            await query.edit_message_reply_markup(_style_buttons(style))
        except TelegramError as exc:
            log.debug("style mark not shown: %s", exc)

    async def _confirm_forget(self, query: Any, answer: str) -> None:
        """The user is forgotten whether or not the question can still be edited (an old
        or inline message cannot); the callback is answered once, after the outcome."""
        if answer != "yes":
            await query.answer(FORGET_KEPT)
            await _edit_question(query, FORGET_KEPT)
            return
        chats = [query.message.chat.id] if query.message is not None else []
        user_id = query.from_user.id
        await self.transport.forget(ForgetRequest(user_id=user_id, chat_ids=chats))
        await self.state.forget_chat(user_id)  # their private chat: its id is theirs
        self.counters["forget"] += 1
        await query.answer(FORGET_DONE)
        await _edit_question(query, FORGET_DONE)


async def _edit_question(query: Any, text: str) -> None:
    """Replaces the question's text, where Telegram still lets the bot (PTB raises TypeError
    for an inaccessible message: too old, or deleted)."""
    try:
        await query.edit_message_text(text)
    except (TypeError, TelegramError) as exc:
        log.debug("question not edited: %s", exc)


def _style_buttons(current: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(
                    ("✓ " if name == current else "") + name, callback_data=f"style:{name}"
                )
                for name in Style
            ]
        ]
    )


def _seconds(value: Any) -> float:
    return float(value.total_seconds()) if hasattr(value, "total_seconds") else float(value)


def touch_heartbeat(path: Path | None) -> None:
    """Writes the time into the heartbeat file a container healthcheck reads (if set)."""
    if path is None:
        return
    try:
        path.write_text(str(time.time()))
    except OSError as exc:
        log.warning("heartbeat file %s: %s", path, exc)
