"""Feedback buttons whose callback data is bound to the person the reply answered.

Votes decide what ``s2s export`` keeps as liked training data, and Telegram clients can send
any callback data they like for a message with a keyboard: "fb:72:-1" alone would let anyone
vote on any bot turn. Each button therefore carries an HMAC of (turn, answered user) under a
key only the bot holds (derived from its token); a press verifies it against the presser's
own id. Someone else in a group pressing the buttons, or forged data, gets a polite refusal
and nothing is stored. The worker checks the same rule against the database
(``DialogueStore.record_feedback``), so a vote that got past a misconfigured bot is refused
there too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Literal

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

NOT_YOURS = "Only the person this reply answered can rate it."
EXPIRED = "These buttons have expired: rate a newer reply."
_DATA = re.compile(r"(\d{1,19}):(1|-1):([A-Za-z0-9_-]{12})")
_ID_MAX = 2**63 - 1  # database ids are bigint


@dataclass(frozen=True)
class Vote:
    turn_id: int
    value: Literal[-1, 1]


class VoteSigner:
    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def for_token(cls, token: str | None) -> VoteSigner:
        """The bot token's signer: stable across restarts, so old buttons keep working.
        Without a token (tests, a local chat) a random key for this process."""
        if token is None:
            return cls(secrets.token_bytes(32))
        return cls(hashlib.sha256(b"s2s feedback buttons\0" + token.encode()).digest())

    def _sign(self, turn_id: int, user_id: int) -> str:
        digest = hmac.new(self._key, f"{turn_id}:{user_id}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:9]).decode()  # 12 characters

    def buttons(self, turn_id: int, user_id: int, vote: int = 0) -> InlineKeyboardMarkup:
        """👍 / 👎 for ``turn_id``, answerable by ``user_id`` only; ``vote`` marks a choice."""
        sig = self._sign(turn_id, user_id)
        up = "👍 ✓" if vote == 1 else "👍"
        down = "👎 ✓" if vote == -1 else "👎"
        return InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton(up, callback_data=f"fb:{turn_id}:1:{sig}"),
                    InlineKeyboardButton(down, callback_data=f"fb:{turn_id}:-1:{sig}"),
                ]
            ]
        )

    def read(self, rest: str, voter_id: int) -> Vote | str:
        """The vote in callback data ``rest`` (after "fb:") if ``voter_id`` may cast it,
        else what to tell the presser: ``NOT_YOURS`` for someone else's (or forged) vote,
        ``EXPIRED`` for buttons without a signature (sent before votes were bound)."""
        match = _DATA.fullmatch(rest)
        if match is None:
            return EXPIRED
        turn_id, sig = int(match[1]), match[3]
        value: Literal[-1, 1] = 1 if match[2] == "1" else -1
        if not 0 < turn_id <= _ID_MAX or not hmac.compare_digest(
            sig, self._sign(turn_id, voter_id)
        ):
            return NOT_YOURS
        return Vote(turn_id, value)
