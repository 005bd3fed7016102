"""Replies through the whole pipeline (Redis + Celery worker + database), measured against
the bare batched ``generate()`` call and against a baseline design in the same run; prints
JSON.

C chats talk at once (each sends, waits for its reply on the stream, sends again).

``model``: the default architecture (12.4M parameters, randomly initialised: decoding cost
is what matters, and an untrained model always decodes to ``max_len``) with the ``varied``
style, at 1 and 32 chats, three runs. For each: replies/s and p50/p99 latency (send → reply
on the stream), and the bare decode time of ``generate()`` at batch C on exactly the inputs
the pipeline decoded (each round's C encoder inputs rebuilt from the database and decoded
as one batch; the mean over rounds is ``bare_decode_ms``). ``pipeline_overhead``: p50 over
the bare batch, minus one. ``batching_lift_32_vs_1``: replies/s at 32 over that at 1, per
run, with the bare decode's own lift beside it.

``plumbing``: a tiny model and three-token replies, so the decoder costs next to nothing and
what is measured is the worker's own handling: replies/s at 1, 32 and 256 chats and the
worker's CPU per reply outside ``generate()`` (the worker process's CPU seconds, from
/proc, minus the decode seconds it reports, over the replies). With ``--baseline REV`` the
same runs against the worker of git revision REV (a worktree of it), side by side.

    python bench/pipeline.py [--quick] [--baseline REV]   # needs Redis at REDIS_URL
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from functools import partial
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _metric(port: int, name: str) -> float:
    """The value of one of the worker's metrics (0 when not yet exposed)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Worker:
    """``s2s worker`` as a child process (of this tree, or of a worktree at ``src``), with
    the counters a run is measured by."""

    def __init__(self, env: dict[str, str], log: Path, src: Path | None = None) -> None:
        self.port = _free_port()
        env = {**env, "METRICS_PORT": str(self.port)}
        args = []
        if src is not None:  # the baseline: its own code first on the path, its own defaults
            env["PYTHONPATH"] = str(src)
            args = ["--concurrency=32"]
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "from s2s_cli.main import app; app()", "worker", *args],
                env=env,
                cwd=src,
                stdout=out,
                stderr=out,
            )

    def counters(self) -> dict[str, float]:
        return {
            "cpu_s": _cpu_seconds(self.proc.pid),
            "decode_s": _metric(self.port, "s2s_decode_seconds_sum"),
            "decoded": _metric(self.port, "s2s_batch_size_sum"),
            "calls": _metric(self.port, "s2s_batch_size_count"),
        }

    def measure(self, talking: Any) -> dict[str, Any]:
        """``talking()``'s row, with the worker's CPU per reply outside ``generate()`` and
        its mean batch over the run."""
        before = self.counters()
        row: dict[str, Any] = talking()
        after = self.counters()
        delta = {k: after[k] - before[k] for k in after}
        row["mean_batch"] = delta["decoded"] / max(delta["calls"], 1)
        row["cpu_ms_per_reply_outside_generate"] = (
            1000 * (delta["cpu_s"] - delta["decode_s"]) / row["replies"]
        )
        return row

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def make_tiny_checkpoint(folder: Path) -> Path:
    """A model that costs next to nothing: three-token replies from a 16-wide LSTM."""
    examples = load_split(DataConfig(), "train")[:2000]
    tokenizer = train_tokenizer(examples, 500)
    torch.manual_seed(0)
    config = ModelConfig(tokenizer.vocab_size, tokenizer.vocab_size, emb_dim=16, hidden_dim=16)
    meta = {
        "data": {"context_turns": 3, "max_src_len": 64},
        "decode": {"max_len": 3, "min_len": 1},
    }
    return save_checkpoint(folder, Seq2Seq(config).eval(), tokenizer, meta)


def _worker_env(folder: Path, redis_url: str, model_dir: Path, name: str) -> dict[str, str]:
    db_url = f"sqlite:///{folder / f'{name}.sqlite3'}"
    upgrade(db_url)
    return {
        **os.environ,
        "REDIS_URL": redis_url,
        "DATABASE_URL": db_url,
        "MODEL_DIR": str(model_dir),
        "DEVICE": "cpu",
    }


def plumbing(
    folder: Path,
    redis_url: str,
    model_dir: Path,
    levels: tuple[int, ...],
    messages: int,
    src: Path | None,
) -> list[dict[str, Any]]:
    """Replies/s and CPU per reply through Redis + worker + database, decoding ~free."""
    name = "baseline" if src is not None else "batches"
    # Torch on one thread: the decode's wall time is then its CPU time, which the CPU per
    # reply outside generate() subtracts.
    env = {**_worker_env(folder, redis_url, model_dir, name), "OMP_NUM_THREADS": "1"}
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    producer = create_app(Settings(redis_url=redis_url))
    worker = Worker(env, folder / f"{name}.log", src)
    try:
        talk(1, 1, 900_000, producer, client)  # warm-up: model load
        rows = []
        for i, chats in enumerate(levels):
            base = 10_000 * (i + 1)
            rows.append(worker.measure(partial(talk, chats, messages, base, producer, client)))
        return rows
    finally:
        worker.stop()
        producer.close()
        client.flushdb()


def model_runs(
    folder: Path, redis_url: str, model_dir: Path, messages: int, runs: int
) -> dict[str, Any]:
    """The default-size model at 1 and 32 chats, ``runs`` times: p50 at 32 against one bare
    batch-32 decode of the same inputs, and the batching lift with its spread."""
    env = _worker_env(folder, redis_url, model_dir, "model")
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    producer = create_app(Settings(redis_url=redis_url))
    worker = Worker(env, folder / "model.log")
    rows: list[dict[str, Any]] = []
    try:
        talk(1, 1, 900_000, producer, client)  # warm-up: model load
        for run in range(runs):
            for chats in (1, 32):
                base = 100_000 * (run + 1) + 1000 * chats
                row = worker.measure(partial(talk, chats, messages, base, producer, client))
                rows.append({"run": run, **row, "base": base})
    finally:
        worker.stop()
        producer.close()
        client.flushdb()
    model, tokenizer, meta = load_checkpoint(model_dir)
    words = word_table(tokenizer)
    first = encoder_input(tokenizer, meta, [], TEXT)
    for row in rows:
        chats = range(row["base"], row["base"] + row["chats"])
        rounds = decoded_inputs(env["DATABASE_URL"], tokenizer, meta, chats)
        row["bare_decode_ms"] = bare_decode_ms(model, words, rounds)
        row["bare_decode_first_message_ms"] = bare_decode_ms(model, words, [[first] * row["chats"]])
        row["pipeline_overhead"] = row["p50_ms"] / row["bare_decode_ms"] - 1
        del row["base"], row["cpu_ms_per_reply_outside_generate"]  # torch's threads: plumbing
    lifts, bare_lifts = [], []
    for run in range(runs):
        one, many = (r for r in rows if r["run"] == run)
        lifts.append(many["replies_per_s"] / one["replies_per_s"])
        bare_lifts.append((32 / many["bare_decode_ms"]) / (1 / one["bare_decode_ms"]))
    at_32 = [r["pipeline_overhead"] for r in rows if r["chats"] == 32]
    return {
        "by_run": rows,
        "pipeline_overhead_at_32": statistics.median(at_32),
        "batching_lift_32_vs_1": statistics.median(lifts),
        "batching_lift_runs": lifts,
        "bare_batching_lift_32_vs_1": statistics.median(bare_lifts),
    }


def run(quick: bool = False, baseline: str | None = None) -> dict[str, Any]:
    base_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    redis_url = base_url.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    redis.Redis.from_url(redis_url).flushdb()
    levels = (1, 8) if quick else (1, 32, 256)
    messages = 2 if quick else 12  # per chat: long enough a run that start and end weigh little
    result: dict[str, Any] = {"benchmark": "pipeline", "decode": decode_config("varied").to_dict()}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        tiny = make_tiny_checkpoint(folder / "tiny")
        result["plumbing"] = {"batches": plumbing(folder, redis_url, tiny, levels, messages, None)}
        if baseline is not None:
            src = folder / "baseline-src"
            subprocess.run(
                ["git", "worktree", "add", "--detach", str(src), baseline],
                check=True,
                capture_output=True,
            )
            try:
                result["plumbing"]["baseline"] = plumbing(
                    folder, redis_url, tiny, levels, messages, src
                )
                result["plumbing"]["baseline_rev"] = baseline
            finally:
                subprocess.run(["git", "worktree", "remove", "--force", str(src)], check=True)
        full = make_checkpoint(folder, quick)
        result["model"] = model_runs(folder, redis_url, full, 2 if quick else 6, 1 if quick else 3)
    result["goals"] = {
        "cpu_ms_per_reply_outside_generate_at_256": 0.5,
        "pipeline_overhead_at_32": 0.25,
        "batching_lift_32_vs_1": 5.0,
    }
    return result


if __name__ == "__main__":
    rev = sys.argv[sys.argv.index("--baseline") + 1] if "--baseline" in sys.argv else None
    print(json.dumps(run(quick="--quick" in sys.argv, baseline=rev), indent=2))
