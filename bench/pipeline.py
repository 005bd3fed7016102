"""Replies through the whole pipeline (Redis + Celery worker + database) against the bare
batched ``generate()`` call, measured in the same run; prints JSON.

C chats talk at once (each sends, waits for its reply on the stream, sends again). For each
C: replies/s and p50/p99 latency (send → reply on the stream). Next to it, the bare decode
time of one ``generate()`` call at batch C with the same decoding settings and model. The
model has the default architecture (12.4M parameters), randomly initialised: decoding cost
is what matters, and an untrained model always decodes to ``max_len``.

    python bench/pipeline.py [--quick]      # needs Redis at REDIS_URL (default localhost)
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import redis
import torch

from s2s_contract.client import send_reply
from s2s_contract.settings import Settings
from s2s_contract.tasks import REPLIES_STREAM, ReplyEvent, ReplyRequest
from s2s_core import ModelConfig, Seq2Seq, generate, load_checkpoint, save_checkpoint
from s2s_core.corpora import Turn
from s2s_core.data import encode_context
from s2s_core.recipe import DataConfig, load_split, train_tokenizer
from worker.celery_app import create_app
from worker.replies import decode_config
from worker.store.migrate import upgrade

REDIS_DB = 12  # flushed by this benchmark


def make_checkpoint(folder: Path, quick: bool) -> Path:
    examples = load_split(DataConfig(), "train")[:5000]
    tokenizer = train_tokenizer(examples, 2000 if quick else 8000)
    size = {"emb_dim": 32, "hidden_dim": 64} if quick else {"emb_dim": 256, "hidden_dim": 512}
    torch.manual_seed(0)
    model = Seq2Seq(
        ModelConfig(
            tokenizer.vocab_size,
            tokenizer.vocab_size,
            n_layers=2,
            dropout=0.0,
            attention="luong",
            tie_embeddings=True,
            **size,
        )
    )
    meta = {"data": {"context_turns": 3, "max_src_len": 64}}
    return save_checkpoint(folder / "model", model.eval(), tokenizer, meta)


class StreamWaiter:
    """One reader of the replies stream that wakes whoever waits for each reply."""

    def __init__(self, client: redis.Redis) -> None:
        self.client, self.events, self.lock = client, {}, threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def expect(self, key: tuple[int, int]) -> threading.Event:
        with self.lock:
            return self.events.setdefault(key, threading.Event())

    def _read(self) -> None:
        last = "$"
        while not self.stop.is_set():
            for _, entries in self.client.xread({REPLIES_STREAM: last}, block=200) or []:
                for entry_id, fields in entries:
                    last = entry_id
                    event = ReplyEvent.model_validate_json(fields["event"])
                    self.expect((event.chat_id, event.message_id)).set()


def talk(
    chats: int, messages: int, base: int, producer: Any, client: redis.Redis, waiter: StreamWaiter
) -> dict[str, Any]:
    latencies: list[float] = []
    lock = threading.Lock()

    def chat(chat_id: int) -> None:
        for m in range(1, messages + 1):
            done = waiter.expect((chat_id, m))
            sent = time.perf_counter()
            send_reply(
                client,
                producer,
                ReplyRequest(
                    chat_id=chat_id,
                    user_id=chat_id,
                    message_id=m,
                    text="so what did you do this weekend?",
                    enqueued_at=time.time(),
                ),
            )
            if not done.wait(300):
                raise TimeoutError(f"no reply for chat {chat_id} message {m}")
            with lock:
                latencies.append(time.perf_counter() - sent)

    start = time.perf_counter()
    threads = [threading.Thread(target=chat, args=(base + c,)) for c in range(chats)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "chats": chats,
        "replies": len(latencies),
        "replies_per_s": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
    }


def bare_decode_ms(model_dir: Path, batch: int, repeats: int) -> float:
    model, tokenizer, _ = load_checkpoint(model_dir)
    source = encode_context(tokenizer, [Turn("so what did you do this weekend?", "user")], 64)
    cfg = decode_config("varied")
    generate(model, [source] * batch, cfg)
    start = time.perf_counter()
    for _ in range(repeats):
        generate(model, [source] * batch, cfg)
    return 1000 * (time.perf_counter() - start) / repeats


def engine_closed_loop(model_dir: Path, chats: int, messages: int) -> dict[str, float]:
    """The same closed loop (each chat sends, waits, sends again) straight into the worker's
    batching engine in this process: no Celery, Redis or database. What the pipeline adds
    beyond this is its own cost; what this adds beyond one bare batch is how replies that
    arrive while a batch decodes wait for the next one."""
    from s2s_core import Tokenizer
    from worker.engine import Engine, default_source

    tokenizer = Tokenizer.load(model_dir / "tokenizer.json")
    source = encode_context(tokenizer, [Turn("so what did you do this weekend?", "user")], 64)
    cfg = decode_config("varied")
    engine = Engine(default_source(model_dir), "cpu", max_batch=32, max_wait_ms=10.0)
    engine.submit(source, cfg).result(timeout=300)  # load
    latencies: list[float] = []
    lock = threading.Lock()

    def chat() -> None:
        for _ in range(messages):
            sent = time.perf_counter()
            engine.submit(source, cfg).result(timeout=300)
            with lock:
                latencies.append(time.perf_counter() - sent)

    threads = [threading.Thread(target=chat) for _ in range(chats)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    engine.close()
    return {"p50_ms": 1000 * statistics.median(latencies)}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _batches(port: int) -> tuple[float, float]:
    """(requests decoded, generate() calls) so far, from the worker's metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    values = dict(
        line.rsplit(" ", 1)
        for line in text.splitlines()
        if line.startswith(("s2s_batch_size_sum", "s2s_batch_size_count"))
    )
    return float(values["s2s_batch_size_sum"]), float(values["s2s_batch_size_count"])


def run(quick: bool = False) -> dict[str, Any]:
    levels = (1, 8, 32)
    messages = 2 if quick else 4
    base_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    redis_url = base_url.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model_dir = make_checkpoint(folder, quick)
        db_url = f"sqlite:///{folder / 'bench.sqlite3'}"
        upgrade(db_url)
        port = _free_port()
        env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "DATABASE_URL": db_url,
            "MODEL_DIR": str(model_dir),
            "DEVICE": "cpu",
            "METRICS_PORT": str(port),
        }
        with open(folder / "worker.log", "wb") as log:
            worker = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from s2s_cli.main import app; app()",
                    "worker",
                    "--concurrency=32",
                    "--loglevel=WARNING",
                ],
                env=env,
                stdout=log,
                stderr=log,
            )
        try:
            producer = create_app(Settings(redis_url=redis_url))
            waiter = StreamWaiter(client)
            talk(1, 1, 900_000, producer, client, waiter)  # warm-up: model load
            pipeline = []
            for i, c in enumerate(levels):
                before = _batches(port)
                row = talk(c, messages, 1000 * (i + 1), producer, client, waiter)
                after = _batches(port)
                row["mean_batch"] = (after[0] - before[0]) / max(after[1] - before[1], 1)
                pipeline.append(row)
            waiter.stop.set()
        finally:
            worker.terminate()
            worker.wait(timeout=30)
        bare = {str(c): bare_decode_ms(model_dir, c, 2 if quick else 3) for c in levels}
        loop = {str(c): engine_closed_loop(model_dir, c, messages) for c in levels}
    client.flushdb()
    for row in pipeline:
        row["bare_decode_ms"] = bare[str(row["chats"])]
        row["pipeline_overhead"] = row["p50_ms"] / row["bare_decode_ms"] - 1
        row["engine_loop_p50_ms"] = loop[str(row["chats"])]["p50_ms"]
        row["overhead_vs_engine_loop"] = row["p50_ms"] / row["engine_loop_p50_ms"] - 1
    return {
        "benchmark": "pipeline",
        "decode": decode_config("varied").to_dict(),
        "by_concurrency": pipeline,
        "batching_lift_32_vs_1": pipeline[-1]["replies_per_s"] / pipeline[0]["replies_per_s"],
        "goals": {"pipeline_overhead_at_32": 0.25, "batching_lift_32_vs_1": 5.0},
    }


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
