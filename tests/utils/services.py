"""Real services for integration tests: a scratch Redis database and a worker process."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

from tests.utils.databases import service_missing

SCRATCH_REDIS_DB = 13  # tests flush this database only


def scratch_url(base: str) -> str:
    """``base`` pointed at the scratch database, whether or not it names one: tests flush
    it, so it must never be a database they did not pick (a bare URL means database 0)."""
    server = base.split("?", 1)[0].rstrip("/")
    if server.count("/") > 2:
        server = server.rsplit("/", 1)[0]
    return f"{server}/{SCRATCH_REDIS_DB}"


def scratch_redis_url() -> str:
    base = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    url = scratch_url(base)
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        service_missing(f"Redis at {base} unusable: {exc}")
    client.flushdb()
    client.close()
    return url


@contextmanager
def s2s_process(
    args: list[str], env: dict[str, str], log_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """An ``s2s`` command as a child process logging to ``log_path``; stopped (TERM, then
    KILL) on exit."""
    full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "s2s_cli", *args],
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield proc
        finally:
            _stop(proc)


def worker_process(env: dict[str, str], log_path: Path, concurrency: int = 4) -> Any:
    """``s2s worker`` (threads pool) as a child process; without a metrics endpoint unless
    ``env`` names a METRICS_PORT (two workers on one machine cannot share one)."""
    return s2s_process(
        ["worker", f"--concurrency={concurrency}"], {"METRICS_PORT": "0", **env}, log_path
    )


def bot_process(env: dict[str, str], log_path: Path) -> Any:
    """``s2s bot`` as a child process."""
    return s2s_process(["bot"], env, log_path)


def bot_env(
    fake_token: str, api_url: str, db_url: str, model_dir: Path, **extra: str
) -> dict[str, str]:
    """The environment of a bot (and its workers) talking to a fake Bot API server."""
    return {
        "TELEGRAM_TOKEN": fake_token,
        "TELEGRAM_API_URL": api_url,
        "DATABASE_URL": db_url,
        "MODEL_DIR": str(model_dir),
        "DEVICE": "cpu",
        "BROKER_VISIBILITY_TIMEOUT": "30",
        "METRICS_PORT": "0",
        **extra,
    }


class PrivateRedis:
    """A redis-server of the test's own, to stop, kill and start at will; with ``aof_dir``
    it keeps an append-only file there (every write synced), so a restart after
    ``kill()`` comes back with everything it had."""

    def __init__(self, aof_dir: Path | None = None) -> None:
        if shutil.which("redis-server") is None:
            service_missing("redis-server is not installed")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        self.aof_dir = aof_dir

    def start(self) -> None:
        options = ["--bind", "127.0.0.1", "--save", ""]
        if self.aof_dir is None:
            options += ["--appendonly", "no"]
        else:
            options += ["--appendonly", "yes", "--appendfsync", "always"]
            options += ["--dir", str(self.aof_dir)]
        proc = self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), *options], stdout=subprocess.DEVNULL
        )
        client = redis.Redis.from_url(self.url)
        try:
            # Slow to start on a loaded machine: a fresh clone's first `make test` timed
            # out here and left the server running behind the failed test.
            wait_for(lambda: _pings(client) or proc.poll() is not None, 60, "redis-server")
            if proc.poll() is not None:
                raise AssertionError(f"redis-server on port {self.port} exited at start")
        except BaseException:
            self.stop()
            raise
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None

    def kill(self) -> None:
        """SIGKILL: no shutdown save, connections cut mid-command."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.exceptions.RedisError:
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
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
