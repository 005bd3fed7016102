"""An unrecoverable error stops `s2s worker` with a non-zero status, so a supervisor that
restarts on failure brings it back (Celery's worker_main used to drop the status: exit 0)."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from tests.utils.services import PrivateRedis, wait_for, worker_process

pytestmark = pytest.mark.integration


def test_an_unrecoverable_broker_error_exits_non_zero(tmp_path: Path, checkpoint_dir: Path) -> None:
    server = PrivateRedis()
    server.start()
    client = redis.Redis.from_url(server.url)
    client.lpush("inference", b"this is not json")  # kombu raises from its read loop
    env = {
        "REDIS_URL": server.url,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'exit.sqlite3'}",
        "MODEL_DIR": str(checkpoint_dir),
        "DEVICE": "cpu",
        "METRICS_PORT": "0",
    }
    try:
        with worker_process(env, tmp_path / "worker.log") as worker:
            wait_for(lambda: worker.poll() is not None, 60, "the worker to stop")
            log = (tmp_path / "worker.log").read_text(errors="replace")
            assert "Unrecoverable error" in log
            assert worker.returncode != 0, log[-2000:]
    finally:
        client.close()
        server.stop()
