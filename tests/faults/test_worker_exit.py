"""A stray broker entry: a worker that meets an entry which is not a task message drops it
with a log line and goes on answering. kombu's read loop raised from it, Celery took that
for an unrecoverable error and stopped the worker (with exit 0 at first; `s2s worker` now
passes Celery's status on, so such a stop is restarted by an on-failure supervisor)."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from s2s_contract.client import send_reply
from s2s_contract.settings import Settings
from s2s_contract.tasks import REPLIES_STREAM, ReplyRequest
from tests.utils.services import PrivateRedis, wait_for, worker_process
from worker.celery_app import create_app
from worker.store.migrate import upgrade

pytestmark = pytest.mark.integration

STRAY = [b"this is not json", b'"a json string"', b"{}", b'{"body": 1}']


def _env(server: PrivateRedis, tmp_path: Path, checkpoint_dir: Path) -> dict[str, str]:
    database = f"sqlite:///{tmp_path / 'stray.sqlite3'}"
    upgrade(database)
    return {
        "REDIS_URL": server.url,
        "DATABASE_URL": database,
        "MODEL_DIR": str(checkpoint_dir),
        "DEVICE": "cpu",
        "METRICS_PORT": "0",
    }


def test_stray_broker_entries_are_dropped_and_the_worker_goes_on(
    tmp_path: Path, checkpoint_dir: Path
) -> None:
    server = PrivateRedis()
    server.start()
    client = redis.Redis.from_url(server.url)
    log_path = tmp_path / "worker.log"
    env = _env(server, tmp_path, checkpoint_dir)
    try:
        with worker_process(env, log_path) as worker:
            wait_for(lambda: " ready." in log_path.read_text(errors="replace"), 90, "ready")
            for entry in STRAY:
                client.lpush("inference", entry)
            producer = create_app(Settings(redis_url=server.url))
            request = ReplyRequest(chat_id=7, user_id=7, message_id=1, text="hello")
            send_reply(client, producer, request)
            producer.close()
            wait_for(lambda: client.xlen(REPLIES_STREAM) == 1, 90, "the reply after the strays")
            log = log_path.read_text(errors="replace")
            assert worker.poll() is None, log[-2000:]
            assert log.count("dropped a broker entry that is not a task message") == len(STRAY)
            assert "Unrecoverable error" not in log
    finally:
        client.close()
        server.stop()
