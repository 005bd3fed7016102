"""The inline buttons: votes on a reply (signed: bot/votes.py), the reply style, and the
/forget confirmation. Each press is answered once, after its outcome is known."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot.texts import DOWN, FORGET_DONE, FORGET_KEPT, THANKS_FOR_VOTE
from bot.transport import ChatState, Transport, TransportDown
from bot.votes import VoteSigner
from s2s_contract.styles import Style
from s2s_contract.tasks import FeedbackRequest, ForgetRequest

log = logging.getLogger(__name__)


@dataclass
class Buttons:
    transport: Transport
    state: ChatState
    votes: VoteSigner
    counters: Counter[str]

    async def press(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
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
        await self.transport.feedback(request)  # TransportDown: answered once, by press()
        await query.answer(THANKS_FOR_VOTE)
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
            await query.edit_message_reply_markup(style_buttons(style))
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


def style_buttons(current: str) -> InlineKeyboardMarkup:
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
