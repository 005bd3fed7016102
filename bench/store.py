"""CPU per call of the worker's per-reply store work, next to the database's floor; prints
JSON.

A worker looks up every reply before decoding (answered already? the chat's recent turns)
and stores it after, for groups of 1 to 32 replies at a time (worker.coalesce). This times
those calls in CPU milliseconds of this process, the cost that competes with Celery and the
other reply threads for the GIL, and divides each by the floor measured in the same run: one
``SELECT 1`` through a session (connection checkout, transaction, round trip). A ratio near
1 means the call costs little more than talking to the database at all.

    python bench/store.py [--quick]    # SQLite in a temporary folder, and PostgreSQL too
                                       # when DATABASE_URL names one (tables are created)
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

from worker.store import DialogueStore, Exchange, GenerationInfo
from worker.store.migrate import upgrade

GENERATION = GenerationInfo(
    model_version="bench",
    decoding={"strategy": "beam", "beam_size": 6, "n_best": 6, "diversity": "hamming"},
    candidates=[{"text": "i went to the beach with my friends", "score": -4.2}] * 6,
    queue_wait_ms=12.0,
    decode_ms=600.0,
    worker_id="bench",
    batch_size=32,
)
FIRST_CHAT = 7_000_000  # far from the ids a test database may hold


def cpu_ms(call: Callable[[], Any], repeats: int) -> float:
    call()  # warm: connections, statement caches
    start = time.process_time()
    for _ in range(repeats):
        call()
    return 1000 * (time.process_time() - start) / repeats


def measure(url: str, quick: bool) -> dict[str, Any]:
    upgrade(url)
    store = DialogueStore(url)
    repeats = 20 if quick else 200
    messages = itertools.count(1)

    def exchanges(chats: int) -> list[Exchange]:
        message = next(messages)
        return [
            Exchange(
                chat_id=FIRST_CHAT + c,
                user_id=FIRST_CHAT + c,
                message_id=message,
                user_text="so what did you do this weekend?",
                reply_text="i went to the beach with my friends",
                generation=GENERATION,
            )
            for c in range(chats)
        ]

    def floor() -> None:
        with store.reads() as s:
            s.execute(text("SELECT 1")).all()

    store.store_exchanges(exchanges(32))  # every chat has a conversation to look up
    results: dict[str, float] = {"floor_select_1": cpu_ms(floor, repeats)}
    for size in (1, 32):
        keys = [(FIRST_CHAT + c, 1) for c in range(size)]
        chats = [FIRST_CHAT + c for c in range(size)]
        results[f"find_replies_{size}"] = cpu_ms(lambda k=keys: store.find_replies(k), repeats)
        results[f"recent_contexts_{size}"] = cpu_ms(
            lambda c=chats: store.recent_contexts(c, 3), repeats
        )
        results[f"store_exchanges_{size}"] = cpu_ms(
            lambda n=size: store.store_exchanges(exchanges(n)), max(5, repeats // 4)
        )
    store.engine.dispose()
    return {
        "cpu_ms": results,
        "vs_floor": {
            name: ms / results["floor_select_1"]
            for name, ms in results.items()
            if name != "floor_select_1"
        },
    }


def run(quick: bool = False) -> dict[str, Any]:
    databases: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        databases["sqlite"] = measure(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}", quick)
    url = os.environ.get("DATABASE_URL", "")
    if url and make_url(url).get_backend_name() == "postgresql":
        databases["postgresql"] = measure(url, quick)
    return {"benchmark": "store", "databases": databases}


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
