"""Scale-out without Docker: three `s2s worker` processes and one `s2s bot` on real Redis and
PostgreSQL; 300 messages through the fake Bot API server are each answered once, and the
work is shared by the workers."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.utils.databases import scratch_postgres
from tests.utils.fake_telegram import FakeTelegram
from tests.utils.services import bot_env, bot_process, scratch_redis_url, worker_process
from worker.store import DialogueStore
from worker.store.migrate import upgrade

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_three_workers_one_bot_answer_300_messages_once(
    tmp_path: Path, checkpoint_dir: Path
) -> None:
    fake = FakeTelegram().start()
    with scratch_postgres() as db_url, ExitStack() as stack:
        upgrade(db_url)
        env = bot_env(
            fake.token,
            fake.base_url,
            db_url,
            checkpoint_dir,
            REDIS_URL=scratch_redis_url(),
            BOT_RATE_LIMIT="100",
        )
        for i in range(3):
            stack.enter_context(worker_process(env, tmp_path / f"worker{i}.log", concurrency=8))
        stack.enter_context(bot_process(env, tmp_path / "bot.log"))
        fake.wait_for(lambda: "getUpdates" in fake.calls, timeout=60)
        sent = fake.crowd(30, 10, 3000, "hello number {i}")
        assert fake.answered_once(sent, timeout=300)
        store = DialogueStore(db_url)
        with store.engine.connect() as conn:
            workers = conn.execute(text("SELECT DISTINCT worker_id FROM generations")).all()
            replies = conn.execute(text("SELECT count(*) FROM turns WHERE speaker = 'bot'"))
            assert replies.scalar_one() == 300
        store.engine.dispose()
        assert len(workers) >= 2, "the work was not shared between worker processes"
    fake.stop()
