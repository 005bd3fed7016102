"""The bot under outages: workers down (one apology, the late reply still delivered) and a
Redis restart (an apology while it is down, nothing crashes, service resumes after)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from bot.texts import BUSY, DOWN
from tests.utils.fake_telegram import FakeTelegram
from tests.utils.services import PrivateRedis, bot_env, bot_process, worker_process
from worker.store.migrate import upgrade

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture
def setup(tmp_path: Path, checkpoint_dir: Path) -> Iterator[dict[str, Any]]:
    redis_server = PrivateRedis()
    redis_server.start()
    fake = FakeTelegram().start()
    db_url = f"sqlite:///{tmp_path / 'bot.sqlite3'}"
    upgrade(db_url)
    env = bot_env(
        fake.token,
        fake.base_url,
        db_url,
        checkpoint_dir,
        REDIS_URL=redis_server.url,
        BOT_REPLY_TIMEOUT_S="3",
    )
    try:
        yield {"fake": fake, "env": env, "redis": redis_server, "tmp": tmp_path}
    finally:
        fake.stop()
        redis_server.stop()


def test_worker_outage_apologises_once_then_delivers_late(setup: dict[str, Any]) -> None:
    fake: FakeTelegram = setup["fake"]
    with ExitStack() as stack:
        stack.enter_context(bot_process(setup["env"], setup["tmp"] / "bot.log"))
        fake.wait_for(lambda: "getUpdates" in fake.calls, timeout=60)
        message = fake.user_message(7, 7, "hello there")
        fake.wait_for(lambda: (7, "typing") in fake.actions)
        apology = fake.wait_for(lambda: fake.replies_to(message), timeout=30)
        assert [s.text for s in apology] == [BUSY] and not apology[0].buttons
        assert "on its way" in BUSY and "try again" not in BUSY  # a resend would get 2 replies
        stack.enter_context(worker_process(setup["env"], setup["tmp"] / "worker.log"))
        fake.wait_for(lambda: len(fake.replies_to(message)) == 2, timeout=90)
        late = fake.replies_to(message)[1]
        assert late.text != BUSY and [b["text"] for b in late.buttons] == ["👍", "👎"]


def test_redis_restart_apologises_then_recovers(setup: dict[str, Any]) -> None:
    fake: FakeTelegram = setup["fake"]
    redis_server: PrivateRedis = setup["redis"]
    env = {**setup["env"], "BOT_REPLY_TIMEOUT_S": "60"}
    with ExitStack() as stack:
        stack.enter_context(worker_process(env, setup["tmp"] / "worker.log"))
        bot = stack.enter_context(bot_process(env, setup["tmp"] / "bot.log"))
        fake.wait_for(lambda: "getUpdates" in fake.calls, timeout=60)
        first = fake.user_message(8, 8, "hello there")
        fake.wait_for(lambda: fake.replies_to(first), timeout=60)

        redis_server.stop()
        during = fake.user_message(8, 8, "how are you")
        assert fake.wait_for(lambda: fake.replies_to(during), timeout=30)[0].text == DOWN

        redis_server.start()
        after = fake.user_message(8, 8, "what is up")
        reply = fake.wait_for(lambda: fake.replies_to(after), timeout=120)[0]
        assert reply.text not in (DOWN, BUSY) and reply.buttons
        assert bot.poll() is None
