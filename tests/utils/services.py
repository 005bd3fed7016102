"""Real services for integration tests: a scratch Redis database and a worker process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from tests.utils.databases import service_missing

SCRATCH_REDIS_DB = 13  # tests flush this database only


def scratch_redis_url() -> str:
    base = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    url = base.rsplit("/", 1)[0] + f"/{SCRATCH_REDIS_DB}" if base.count("/") > 2 else base
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        service_missing(f"Redis at {base} unusable: {exc}")
    client.flushdb()
    client.close()
    return url


@contextmanager
def worker_process(
    env: dict[str, str], log_path: Path, concurrency: int = 16
) -> Iterator[subprocess.Popen[bytes]]:
    """``s2s worker`` as a child process; stopped (TERM, then KILL) on exit."""
    full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from s2s_cli.main import app; app()",
                "worker",
                f"--concurrency={concurrency}",
            ],
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
