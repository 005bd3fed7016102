"""The fake Telegram a person runs by hand (`python -m tests.utils.fake_telegram`): typed
lines become a user's messages, the bot's answers are printed."""

from __future__ import annotations

import io
import threading

from tests.utils.fake_telegram import CHAT_ID, FakeTelegram, talk


def test_typed_lines_go_to_the_bot_and_its_replies_come_back() -> None:
    fake = FakeTelegram(token="123:abc").start()
    stop = threading.Event()

    def echo_bot() -> None:  # answers each message as a bot would, through the Bot API
        answered = 0
        while not stop.is_set():
            with fake.cond:
                fake.cond.wait(0.05)
                waiting = [u["message"] for u in fake.updates][answered:]
            for message in waiting:
                fake.call(
                    "sendMessage",
                    {
                        "chat_id": CHAT_ID,
                        "text": f"you said {message['text']}",
                        "reply_parameters": {"message_id": message["message_id"]},
                    },
                )
                answered += 1

    bot = threading.Thread(target=echo_bot, daemon=True)
    bot.start()
    out = io.StringIO()
    try:
        talk(fake, ["hello\n", "\n", "I got a puppy\n"], out, timeout=10)
    finally:
        stop.set()
        bot.join()
        fake.stop()
    assert out.getvalue().splitlines() == ["bot> you said hello", "bot> you said I got a puppy"]


def test_no_bot_running_is_said_not_waited_on_forever() -> None:
    fake = FakeTelegram().start()
    out = io.StringIO()
    try:
        talk(fake, ["anyone?"], out, timeout=0.3)
    finally:
        fake.stop()
    assert "is `s2s bot` running?" in out.getvalue()
