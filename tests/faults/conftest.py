"""The fault tests' rig: a private redis-server with an append-only file (to stop, kill and
restart at will), a SQLite database, and the environment a worker runs in against them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.utils.services import PrivateRedis
from worker.store import DialogueStore
from worker.store.migrate import upgrade


@pytest.fixture
def rig(tmp_path: Path, checkpoint_dir: Path) -> Iterator[dict[str, Any]]:
    server = PrivateRedis(aof_dir=tmp_path)
    db_url = f"sqlite:///{tmp_path / 'restarts.sqlite3'}"
    upgrade(db_url)
    store = DialogueStore(db_url)
    env = {
        "REDIS_URL": server.url,
        "DATABASE_URL": db_url,
        "MODEL_DIR": str(checkpoint_dir),
        "DEVICE": "cpu",
        "BROKER_VISIBILITY_TIMEOUT": "10",
        "PENDING_SWEEP_AFTER_S": "20",  # a task lost with Redis is re-sent after 20 s
        "METRICS_PORT": "0",
    }
    try:
        server.start()  # inside: a server that fails to start is stopped too
        yield {"server": server, "store": store, "env": env, "tmp": tmp_path}
    finally:
        store.engine.dispose()
        server.stop()
