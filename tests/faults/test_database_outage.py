"""PostgreSQL refusing connections for 30 s under traffic: the worker keeps running, retries
with backoff, and once the database is back every message is answered exactly once and
stored once (one user turn and one bot turn per message)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from tests.utils.databases import scratch_postgres
from tests.utils.services import PrivateRedis, wait_for, worker_process
from tests.utils.tcp_proxy import TcpProxy
from tests.utils.traffic import published, send_messages
from worker.store import DialogueStore
from worker.store.migrate import upgrade
from worker.store.models import Turn

pytestmark = pytest.mark.integration

USERS, OUTAGE_S = 10, 30


def test_a_30_s_database_outage_loses_and_doubles_nothing(
    tmp_path: Path, checkpoint_dir: Path
) -> None:
    server = PrivateRedis()
    server.start()
    with scratch_postgres() as direct:
        upgrade(direct)
        target = make_url(direct)
        proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432).up()
        through_proxy = target.set(host="127.0.0.1", port=proxy.port)
        env = {
            "REDIS_URL": server.url,
            "DATABASE_URL": through_proxy.render_as_string(hide_password=False),
            "MODEL_DIR": str(checkpoint_dir),
            "DEVICE": "cpu",
            "METRICS_PORT": "0",
        }
        store = DialogueStore(direct)
        log_path = tmp_path / "worker.log"
        try:
            with worker_process(env, log_path) as worker:
                before = [(100 + user, 1, "hi there") for user in range(USERS)]
                send_messages(server.url, before)
                wait_for(lambda: len(published(server.url)) == USERS, 90, "answers before")
                proxy.down()  # the database refuses connections
                during = [(100 + user, 2, "hi there") for user in range(USERS)]
                send_messages(server.url, during)
                time.sleep(OUTAGE_S)
                assert len(published(server.url)) == USERS  # nothing answered without a store
                proxy.up()
                wait_for(lambda: len(published(server.url)) == 2 * USERS, 120, "answers after")
                log = log_path.read_text(errors="replace")
                assert worker.poll() is None, log[-3000:]
                assert "transient OperationalError" in log  # it did meet the outage
            answers = published(server.url)
            assert set(answers) == {(chat, message) for chat, message, _ in before + during}
            assert set(answers.values()) == {1}  # exactly once each
            with store.sessions() as s:
                speakers = dict(
                    s.execute(select(Turn.speaker, func.count()).group_by(Turn.speaker)).all()
                )
            assert speakers == {"user": 2 * USERS, "bot": 2 * USERS}
        finally:
            store.engine.dispose()
            proxy.down()
            server.stop()
