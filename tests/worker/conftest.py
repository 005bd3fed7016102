from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.utils.databases import scratch_database
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
