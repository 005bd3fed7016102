"""Replies through the whole pipeline (Redis + Celery worker + database) against the bare
batched ``generate()`` call, measured in the same run; prints JSON.

C chats talk at once (each sends, waits for its reply on the stream, sends again). For each
C: replies/s and p50/p99 latency (send → reply on the stream). Next to it, the bare decode
time of ``generate()`` at batch C on exactly the inputs the pipeline decoded: after the run,
each round's C encoder inputs (the chats' m-th messages with their context, as the worker
built them) are rebuilt from the database and decoded as one batch; the mean over rounds is
``bare_decode_ms``. Later messages carry their conversation, so their inputs are longer and
slower to decode than a first message alone (``bare_decode_first_message_ms``). Also the
same closed loop straight into the worker's batching engine in this process
(``engine_loop_p50_ms``): what the pipeline adds beyond it is Redis, Celery and the
database; what it adds beyond one bare batch is the batching itself. The model has the
default architecture (12.4M parameters), randomly initialised: decoding cost is what
matters, and an untrained model always decodes to ``max_len``.

    python bench/pipeline.py [--quick]      # needs Redis at REDIS_URL (default localhost)
"""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import redis
import torch
from sqlalchemy import select

from s2s_contract.client import send_reply
from s2s_contract.settings import Settings
from s2s_contract.tasks import REPLIES_STREAM, ReplyEvent, ReplyRequest
from s2s_core import (
    ModelConfig,
    Seq2Seq,
    Tokenizer,
    generate,
    load_checkpoint,
    save_checkpoint,
)
from s2s_core.corpora import Turn
from s2s_core.decoding import WordTable, word_table
from s2s_core.recipe import DataConfig, load_split, train_tokenizer
from worker.celery_app import create_app
from worker.replies import decode_config
from worker.service import encoder_input
from worker.store import DialogueStore
from worker.store.migrate import upgrade
from worker.store.models import Turn as TurnRow

REDIS_DB = 12  # flushed by this benchmark
TEXT = "so what did you do this weekend?"


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


def talk(
    chats: int, messages: int, base: int, producer: Any, client: redis.Redis
) -> dict[str, Any]:
    """A closed loop driven from one thread: each reply read off the stream sends its
    chat's next message at once. One thread keeps the driver's own cost small and out of
    the worker's way (a thread per chat contends for the GIL and spreads a burst of sends
    over tens of milliseconds on these two cores)."""
    newest = client.xrevrange(REPLIES_STREAM, count=1)
    last = newest[0][0] if newest else "0-0"
    sent: dict[tuple[int, int], float] = {}
    latencies: list[float] = []

    def send(chat_id: int, message_id: int) -> None:
        sent[(chat_id, message_id)] = time.perf_counter()
        request = ReplyRequest(
            chat_id=chat_id,
            user_id=chat_id,
            message_id=message_id,
            text=TEXT,
            enqueued_at=time.time(),
        )
        send_reply(client, producer, request)

    start = time.perf_counter()
    for c in range(chats):
        send(base + c, 1)
    while len(latencies) < chats * messages:
        if time.perf_counter() - start > 600:
            raise TimeoutError(f"{len(latencies)} of {chats * messages} replies in 10 minutes")
        for _, entries in client.xread({REPLIES_STREAM: last}, block=1000) or []:
            for entry_id, fields in entries:
                last = entry_id
                event = ReplyEvent.model_validate_json(fields["event"])
                asked = sent.pop((event.chat_id, event.message_id), None)
                if asked is None:  # delivery is at-least-once: a repeat, or another level's
                    continue
                latencies.append(time.perf_counter() - asked)
                if event.message_id < messages:
                    send(event.chat_id, event.message_id + 1)
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "chats": chats,
        "replies": len(latencies),
        "replies_per_s": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
    }


def decoded_inputs(
    db_url: str, tokenizer: Tokenizer, meta: dict[str, Any], chats: range
) -> list[list[list[int]]]:
    """Per round m, the encoder inputs of the chats' m-th messages as the worker built
    them from the turns stored before each."""
    store = DialogueStore(db_url)
    with store.sessions() as s:
        rows = s.execute(
            select(TurnRow.chat_id, TurnRow.speaker, TurnRow.text)
            .where(TurnRow.chat_id >= chats.start, TurnRow.chat_id < chats.stop)
            .order_by(TurnRow.id)
        ).all()
    store.engine.dispose()
    turns: dict[int, list[Turn]] = {}
    for row in rows:
        turns.setdefault(row.chat_id, []).append(Turn(row.text, row.speaker))
    rounds: dict[int, list[list[int]]] = {}
    for said in turns.values():
        asked = [i for i, turn in enumerate(said) if turn.speaker == "user"]
        for m, i in enumerate(asked):
            source = encoder_input(tokenizer, meta, said[:i], said[i].text)
            rounds.setdefault(m, []).append(source)
    return [rounds[m] for m in sorted(rounds)]


def bare_decode_ms(model: Seq2Seq, words: WordTable, rounds: list[list[list[int]]]) -> float:
    """Mean time of one ``generate()`` call per round, on that round's inputs."""
    cfg = decode_config("varied")
    generate(model, rounds[-1], cfg, words)
    start = time.perf_counter()
    for sources in rounds:
        generate(model, sources, cfg, words)
    return 1000 * (time.perf_counter() - start) / len(rounds)


def engine_closed_loop(model_dir: Path, rounds: list[list[list[int]]]) -> dict[str, float]:
    """The same closed loop (each chat sends, waits, sends again) straight into the worker's
    batching engine in this process: no Celery, Redis or database. What the pipeline adds
    beyond this is its own cost; what this adds beyond one bare batch is how replies that
    arrive while a batch decodes wait for the next one. Runs in a fresh process, as the
    worker's engine does: this one's main thread ran torch, which would slow the engine's
    inference thread (see bench/torch_threads.py)."""
    from worker.engine import Engine, default_source

    cfg = decode_config("varied")
    engine = Engine(
        default_source(model_dir), "cpu", max_wait_ms=Settings().batch_max_wait_ms
    )  # as the worker's
    engine.submit(rounds[0][0], cfg).result(timeout=300)  # load
    latencies: list[float] = []
    lock = threading.Lock()

    def chat(c: int) -> None:
        for sources in rounds:
            sent = time.perf_counter()
            engine.submit(sources[c], cfg).result(timeout=300)
            with lock:
                latencies.append(time.perf_counter() - sent)

    threads = [threading.Thread(target=chat, args=(c,)) for c in range(len(rounds[0]))]
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
    messages = 2 if quick else 6
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
            talk(1, 1, 900_000, producer, client)  # warm-up: model load
            pipeline = []
            for i, c in enumerate(levels):
                before = _batches(port)
                row = talk(c, messages, 1000 * (i + 1), producer, client)
                after = _batches(port)
                row["mean_batch"] = (after[0] - before[0]) / max(after[1] - before[1], 1)
                pipeline.append(row)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
        model, tokenizer, meta = load_checkpoint(model_dir)
        first_message = encoder_input(tokenizer, meta, [], TEXT)
        for i, row in enumerate(pipeline):
            chats = range(1000 * (i + 1), 1000 * (i + 1) + row["chats"])
            rounds = decoded_inputs(db_url, tokenizer, meta, chats)
            row["bare_decode_ms"] = bare_decode_ms(model, word_table(tokenizer), rounds)
            row["bare_decode_first_message_ms"] = bare_decode_ms(
                model, word_table(tokenizer), [[first_message] * row["chats"]] * (2 if quick else 3)
            )
            row["pipeline_overhead"] = row["p50_ms"] / row["bare_decode_ms"] - 1
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as fresh:
                loop = fresh.submit(engine_closed_loop, model_dir, rounds).result()
            row["engine_loop_p50_ms"] = loop["p50_ms"]
            row["overhead_vs_engine_loop"] = row["p50_ms"] / row["engine_loop_p50_ms"] - 1
    client.flushdb()
    lift = pipeline[-1]["replies_per_s"] / pipeline[0]["replies_per_s"]
    # The most batching can give here: bare decode throughput at 32 over that at 1.
    bare_lift = (32 / pipeline[-1]["bare_decode_ms"]) / (1 / pipeline[0]["bare_decode_ms"])
    return {
        "benchmark": "pipeline",
        "decode": decode_config("varied").to_dict(),
        "by_concurrency": pipeline,
        "batching_lift_32_vs_1": lift,
        "bare_batching_lift_32_vs_1": bare_lift,
        "batching_lift_share_of_bare": lift / bare_lift,
        "goals": {"pipeline_overhead_at_32": 0.25, "batching_lift_32_vs_1": 5.0},
    }


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
