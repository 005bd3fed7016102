"""The bot's pure parts: text cleaning, splitting, rate limits, dedup, and its room rules."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import warnings
from datetime import timedelta

import pytest
from telegram.error import Forbidden, NetworkError, RetryAfter
from typer.testing import CliRunner

from bot.sender import send
from bot.texts import clean_text, split_message
from bot.transport import MemoryState, RateLimiter
from bot.votes import EXPIRED, NOT_YOURS, Vote, VoteSigner
from s2s_cli.main import app


def test_clean_text_strips_controls_and_keeps_emoji_sequences() -> None:
    assert clean_text("  hi\x00 there\x07\n\nfriend\t ") == "hi there friend"
    family = "👨\u200d👩\u200d👧"
    assert clean_text(f"a\u200bb {family}") == f"ab {family}"
    assert clean_text("\x1b[31m") == "[31m"
    assert clean_text(" \n\t ") == ""


def test_split_message_respects_the_limit_and_keeps_the_words() -> None:
    text = " ".join(f"word{i}" for i in range(3000))
    parts = split_message(text)
    assert len(parts) > 1 and all(0 < len(p) <= 4096 for p in parts)
    assert " ".join(parts).split() == text.split()
    assert split_message("short") == ["short"]
    assert all(len(p) <= 4096 for p in split_message("x" * 9000))


def test_rate_limiter_allows_the_limit_and_notifies_once_per_window() -> None:
    limiter = RateLimiter(limit=3, window_s=60)
    assert [limiter.allow(1, now=t) for t in (0, 1, 2, 3)] == [True, True, True, False]
    assert limiter.allow(2, now=3)  # users are independent
    assert limiter.should_notify(1, now=3) and not limiter.should_notify(1, now=30)
    assert limiter.allow(1, now=61)  # the window slid past the first message
    assert limiter.should_notify(1, now=64)


def test_rate_limiter_forgets_quiet_users() -> None:
    limiter = RateLimiter(limit=3, window_s=60)
    for user in range(10_000):
        limiter.allow(user, now=user / 1000)  # 10,000 users within 10 s
        limiter.should_notify(user, now=user / 1000)
    assert len(limiter) == 10_000
    assert limiter.allow(1, now=200)  # two windows later only the active user is left
    assert len(limiter) == 1


def test_memory_state_sees_each_message_once_and_stays_bounded() -> None:
    async def scenario() -> None:
        state = MemoryState(capacity=2)
        assert not await state.seen(1, 10)
        await state.mark_seen(1, 10)
        assert await state.seen(1, 10)
        await state.mark_seen(1, 11)
        await state.mark_seen(1, 12)
        assert not await state.seen(1, 10)  # evicted: the oldest go first
        assert not await state.delivered(1, 10)
        await state.mark_delivered(1, 10)
        assert await state.delivered(1, 10)
        assert await state.style(5) is None
        await state.set_style(5, "playful")
        assert await state.style(5) == "playful"

    asyncio.run(scenario())


def test_feedback_buttons_carry_the_turn_and_mark_the_vote() -> None:
    votes = VoteSigner.for_token("123:abc")
    markup = votes.buttons(42, user_id=7, vote=-1)
    buttons = markup.inline_keyboard[0]
    data = [str(b.callback_data) for b in buttons]
    assert [d.rsplit(":", 1)[0] for d in data] == ["fb:42:1", "fb:42:-1"]
    assert all(len(d.encode()) <= 64 for d in data)  # Telegram's limit for callback data
    assert buttons[1].text.endswith("✓") and not buttons[0].text.endswith("✓")
    assert votes.read(data[1][3:], voter_id=7) == Vote(42, -1)
    # The same token signs the same way after a restart; another token does not.
    assert VoteSigner.for_token("123:abc").read(data[0][3:], 7) == Vote(42, 1)
    assert VoteSigner.for_token("456:def").read(data[0][3:], 7) == NOT_YOURS


@pytest.mark.parametrize(
    ("rest", "voter", "outcome"),
    [
        ("{sig42}", 8, NOT_YOURS),  # someone else pressing the buttons of user 7's reply
        ("43:1:{tail}", 7, NOT_YOURS),  # the signature moved to another turn
        ("42:1", 7, EXPIRED),  # buttons sent before votes were signed
        ("oops", 7, EXPIRED),
        ("99999999999999999999999:1:AAAAAAAAAAAA", 7, EXPIRED),  # beyond bigint
        ("9223372036854775808:1:AAAAAAAAAAAA", 7, NOT_YOURS),  # 2**63: refused before the db
        ("42:0:{tail}", 7, EXPIRED),
    ],
)
def test_votes_are_refused_unless_cast_by_the_answered_user(
    rest: str, voter: int, outcome: str
) -> None:
    votes = VoteSigner.for_token("123:abc")
    signed = str(votes.buttons(42, user_id=7).inline_keyboard[0][0].callback_data)[3:]
    tail = signed.rsplit(":", 1)[1]
    assert votes.read(rest.format(sig42=signed, tail=tail), voter) == outcome


def test_the_bot_never_loads_torch_or_sql() -> None:
    code = (
        "import sys, bot.app, bot.handlers, bot.redis_transport, bot.transport\n"
        "import s2s_cli.main, s2s_cli.bot_command\n"
        "bad = [m for m in ('torch', 'sqlalchemy', 's2s_core', 'worker') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    ("env", "args", "message"),
    [
        ({"TELEGRAM_TOKEN": ""}, [], "TELEGRAM_TOKEN is not set"),
        ({"TELEGRAM_TOKEN": "1:x", "ADMIN_IDS": "1,bob"}, [], "bad configuration"),
        ({"TELEGRAM_TOKEN": "1:x", "BOT_RATE_LIMIT": "0"}, [], "bad configuration"),
        (
            {"TELEGRAM_TOKEN": "1:x", "TELEGRAM_WEBHOOK_SECRET": ""},
            ["--webhook-url", "https://example.org/telegram"],
            "TELEGRAM_WEBHOOK_SECRET",
        ),
        ({"TELEGRAM_TOKEN": "1:x"}, ["--port", "http"], "port"),
    ],
)
def test_bot_refuses_bad_configuration_clearly(
    env: dict[str, str], args: list[str], message: str
) -> None:
    result = CliRunner().invoke(app, ["bot", *args], env=env)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert "1:x" not in result.output


class _FlakyBot:
    """send_message raises the given errors in turn, then succeeds."""

    def __init__(self, *errors: Exception) -> None:
        self.errors, self.calls = list(errors), 0

    async def send_message(self, *args: object, **kwargs: object) -> None:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)


def _telegram_error(kind: str) -> Exception:
    if kind == "flood":
        with warnings.catch_warnings():  # PTB warns that retry_after will become a timedelta
            warnings.simplefilter("ignore")
            return RetryAfter(timedelta(seconds=3))
    return NetworkError("reset by peer") if kind == "network" else Forbidden("bot was blocked")


@pytest.mark.parametrize(
    ("kind", "raised", "calls"),
    [
        ("network", None, 2),  # ours to retry: PTB does not
        ("flood", RetryAfter, 1),  # the rate limiter (bot/app.py) already retried it
        ("blocked", Forbidden, 1),  # permanent
    ],
)
def test_each_error_has_one_owner_of_its_retries(
    monkeypatch: pytest.MonkeyPatch, kind: str, raised: type | None, calls: int
) -> None:
    async def no_wait(_: float) -> None:
        return None

    monkeypatch.setattr("bot.sender.asyncio.sleep", no_wait)
    bot = _FlakyBot(_telegram_error(kind))
    if raised is None:
        asyncio.run(send(bot, 1, "hi"))  # type: ignore[arg-type]
    else:
        with pytest.raises(raised):
            asyncio.run(send(bot, 1, "hi"))  # type: ignore[arg-type]
    assert bot.calls == calls
