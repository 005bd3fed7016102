from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.utils.databases import scratch_database
from tests.utils.services import scratch_redis_url
from worker.store import DialogueStore
from worker.store.migrate import upgrade


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with scratch_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def store(database_url: str) -> Iterator[DialogueStore]:
    upgrade(database_url)
    store = DialogueStore(database_url)
    yield store
    store.engine.dispose()


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    """A client of the scratch Redis database, flushed after the test."""
    client = redis.Redis.from_url(scratch_redis_url())
    yield client
    client.flushdb()
    client.close()
