"""PostgreSQL refusing connections for 30 s under traffic: the worker keeps running, retries
with backoff, and once the database is back every message is answered exactly once and
stored once (one user turn and one bot turn per message)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from s2s_contract.client import send_reply
from s2s_contract.settings import Settings
from s2s_contract.tasks import REPLIES_STREAM, ReplyEvent, ReplyRequest
from tests.utils.databases import scratch_postgres
from tests.utils.services import PrivateRedis, wait_for, worker_process
from tests.utils.tcp_proxy import TcpProxy
from worker.celery_app import create_app
from worker.store import DialogueStore
from worker.store.migrate import upgrade
from worker.store.models import Turn

pytestmark = pytest.mark.integration

USERS, OUTAGE_S = 10, 30


def _send(url: str, messages: list[tuple[int, int]]) -> None:
    producer = create_app(Settings(redis_url=url))
    client = redis.Redis.from_url(url)
    for chat, message_id in messages:
        payload = {"chat_id": chat, "user_id": chat, "message_id": message_id, "text": "hi there"}
        send_reply(client, producer, ReplyRequest.model_validate(payload))
    producer.close()
    client.close()


def _published(url: str) -> Counter[tuple[int, int]]:
    client = redis.Redis.from_url(url)
    entries = client.xrange(REPLIES_STREAM)
    client.close()
    events = [ReplyEvent.model_validate_json(fields[b"event"]) for _, fields in entries]
    return Counter((e.chat_id, e.message_id) for e in events)


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
                before = [(100 + user, 1) for user in range(USERS)]
                _send(server.url, before)
                wait_for(lambda: len(_published(server.url)) == USERS, 90, "answers before")
                proxy.down()  # the database refuses connections
                during = [(100 + user, 2) for user in range(USERS)]
                _send(server.url, during)
                time.sleep(OUTAGE_S)
                assert len(_published(server.url)) == USERS  # nothing answered without a store
                proxy.up()
                wait_for(lambda: len(_published(server.url)) == 2 * USERS, 120, "answers after")
                log = log_path.read_text(errors="replace")
                assert worker.poll() is None, log[-3000:]
                assert "transient OperationalError" in log  # it did meet the outage
            published = _published(server.url)
            assert set(published) == set(before + during)
            assert set(published.values()) == {1}  # exactly once each
            with store.sessions() as s:
                speakers = dict(
                    s.execute(select(Turn.speaker, func.count()).group_by(Turn.speaker)).all()
                )
            assert speakers == {"user": 2 * USERS, "bot": 2 * USERS}
        finally:
            store.engine.dispose()
            proxy.down()
            server.stop()
