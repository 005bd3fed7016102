"""The slash commands: /start, /help, /reset, /forget (asks first: bot/buttons.py does it),
/settings, /about, and /stats for admins."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import ContextTypes

from bot.buttons import style_buttons
from bot.config import BotConfig
from bot.sender import say, send
from bot.texts import (
    DOWN,
    FORGET_ASK,
    GREETING,
    HELP,
    HOW_REPLIES_ARE_MADE,
    NOT_ANSWERED_YET,
    RESET_DONE,
    STYLE_ASK,
)
from bot.transport import ChatState, Transport, TransportDown
from s2s_contract.styles import DEFAULT_STYLE, DESCRIPTIONS

Context = ContextTypes.DEFAULT_TYPE


@dataclass
class Commands:
    config: BotConfig
    transport: Transport
    state: ChatState
    counters: Counter[str]
    started: float = field(default_factory=time.time)

    async def start(self, update: Update, context: Context) -> None:
        if update.message and self.config.allows(update):
            await say(context.bot, update.message, GREETING)

    async def help(self, update: Update, context: Context) -> None:
        if update.message and self.config.allows(update):
            await say(context.bot, update.message, HELP)

    async def reset(self, update: Update, context: Context) -> None:
        message = update.message
        if message is None or not self.config.allows(update):
            return
        try:
            await self.transport.reset(message.chat.id)
        except TransportDown:
            await say(context.bot, message, DOWN)
            return
        await say(context.bot, message, RESET_DONE)

    async def forget(self, update: Update, context: Context) -> None:
        message = update.message
        if message is None or message.from_user is None or not self.config.allows(update):
            return
        buttons = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton("Yes, delete", callback_data="forget:yes"),
                    InlineKeyboardButton("No", callback_data="forget:no"),
                ]
            ]
        )
        await send(
            context.bot, message.chat.id, FORGET_ASK, reply_to=message.message_id, markup=buttons
        )

    async def settings(self, update: Update, context: Context) -> None:
        message = update.message
        if message is None or not self.config.allows(update):
            return
        current = await self.state.style(message.chat.id) or DEFAULT_STYLE
        await send(
            context.bot,
            message.chat.id,
            STYLE_ASK + "\n\n" + "\n".join(DESCRIPTIONS.values()),
            reply_to=message.message_id,
            markup=style_buttons(current),
        )

    async def about(self, update: Update, context: Context) -> None:
        message = update.message
        if message is None or not self.config.allows(update):
            return
        try:
            info = await self.transport.model_info()
        except TransportDown:
            info = None
        if not info:
            text = NOT_ANSWERED_YET
        else:
            lines = [str(info.get("name", "Seq2Seq model")), f"version {info['version'][:12]}"]
            if info.get("test_perplexity"):
                lines.append(f"test perplexity {info['test_perplexity']:.1f}")
            lines += training_lines(info)
            lines.append(HOW_REPLIES_ARE_MADE[bool(info.get("corpus_replies"))])
            text = "\n".join(lines)
        await say(context.bot, message, text)

    async def stats(self, update: Update, context: Context) -> None:
        message = update.message
        if message is None or message.from_user is None:
            return
        if message.from_user.id not in self.config.admin_ids:
            return  # not advertised; others get no answer
        try:
            numbers = await self.transport.stats()
        except TransportDown:
            numbers = {"transport": "down"}
        uptime = {"uptime (min)": round((time.time() - self.started) / 60, 1)}
        rows = {**uptime, **self.counters, **numbers}
        await say(context.bot, message, "\n".join(f"{k}: {v}" for k, v in rows.items()))


def training_lines(info: dict[str, Any]) -> list[str]:
    """How the serving model was made, in words: "fine-tuned from default on 32 pairs
    (1 step)" or "trained for 13,560 steps"."""
    steps, pairs = info.get("trained_steps"), info.get("train_pairs")
    if not steps:
        return []
    step_words = f"{steps:,} step{'' if steps == 1 else 's'}"
    if not info.get("fine_tuned"):
        return [f"trained for {step_words}"]
    origin = f" from {info['fine_tuned_from']}" if info.get("fine_tuned_from") else ""
    on = f" on {pairs:,} pair{'' if pairs == 1 else 's'}" if pairs else ""
    return [f"fine-tuned{origin}{on} ({step_words})"]
