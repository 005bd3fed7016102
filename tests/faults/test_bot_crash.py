"""The bot SIGKILLed while Telegram fails every sendMessage: once Telegram is back, the next
bot delivers every reply the dead one could not, each exactly once (it claims the dead
consumer's pending stream entries after they idle 30 s).

Real processes: `s2s bot` against the fake Bot API, `s2s worker`, a private redis-server with
an append-only file, a SQLite database."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.texts import BUSY
from tests.utils.fake_telegram import FakeTelegram
from tests.utils.services import PrivateRedis, bot_env, bot_process, wait_for, worker_process
from worker.store import DialogueStore
from worker.store.migrate import upgrade
from worker.store.models import Generation

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_replies_survive_a_bot_killed_while_telegram_fails(
    tmp_path: Path, checkpoint_dir: Path
) -> None:
    server = PrivateRedis(aof_dir=tmp_path)
    server.start()
    fake = FakeTelegram().start()
    db_url = f"sqlite:///{tmp_path / 'bot.sqlite3'}"
    upgrade(db_url)
    store = DialogueStore(db_url)
    env = bot_env(fake.token, fake.base_url, db_url, checkpoint_dir, REDIS_URL=server.url)

    def stored() -> int:
        with store.sessions() as s:
            return int(s.scalar(select(func.count()).select_from(Generation)) or 0)

    try:
        with worker_process(env, tmp_path / "worker.log"):
            with bot_process(env, tmp_path / "first-bot.log") as first:
                fake.wait_for(lambda: "getUpdates" in fake.calls, timeout=60)
                fake.failing = 502
                sent = fake.crowd(5, 1, 500, "hello from user {u}")
                wait_for(lambda: stored() == 5, 60, "the five replies stored")
                wait_for(lambda: fake.calls.count("sendMessage") >= 5, 30, "failed sends")
                first.kill()  # SIGKILL: its stream entries stay pending under its name
                first.wait()
            assert fake.sent == []  # nothing reached anyone
            fake.failing = 0
            with bot_process(env, tmp_path / "second-bot.log"):
                fake.wait_for(
                    lambda: all(
                        [s.text for s in fake.replies_to(m) if s.text != BUSY] for m in sent
                    ),
                    timeout=120,
                )
                for message in sent:  # one reply each (an apology may come before it)
                    assert len([s for s in fake.replies_to(message) if s.text != BUSY]) == 1
                assert stored() == 5
    finally:
        store.engine.dispose()
        fake.stop()
        server.stop()
