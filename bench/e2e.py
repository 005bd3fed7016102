"""End to end through Telegram's side: latency from a user's update appearing on the (fake)
Bot API server to the bot's sendMessage, and replies/s, at 1, 10 and 100 concurrent users;
beside it, from the same run and the same worker, the bare pipeline (a task queued straight
to Redis → the reply on the stream) at the same concurrency. Prints JSON.

    REDIS_URL=redis://127.0.0.1:6379/0 python bench/e2e.py [--model models/default] [--scale 3]

--scale N repeats the 100-user level with N worker processes (replies/s ratio reported).

Starts its own `s2s worker` and `s2s bot` processes, a fake Bot API server on 127.0.0.1 and
a scratch SQLite database; uses Redis database 13 (flushed).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import redis

# The fake Bot API server and the process helpers live in the test utilities, which are not
# installed: run as `python bench/e2e.py`, the repository root must be importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.redis_transport import sender
from s2s_contract.client import send_reply
from s2s_contract.tasks import REPLIES_STREAM, ReplyEvent, ReplyRequest
from tests.utils.fake_telegram import FakeTelegram
from tests.utils.services import bot_env, bot_process, scratch_redis_url, worker_process
from worker.store.migrate import upgrade

LEVELS = {1: 12, 10: 4, 100: 2}  # concurrent users → messages each, sent one after another
TEXTS = ["hello there!", "how are you today?", "what do you like to do?", "tell me more"]


def percentiles(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "p50_ms": round(1000 * statistics.median(ordered), 1),
        "p99_ms": round(1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 1),
    }


def through_telegram(fake: FakeTelegram, users: int, each: int, base: int) -> dict[str, Any]:
    latencies: list[float] = []
    lock = threading.Lock()

    def user(uid: int) -> None:
        for k in range(each):
            message = fake.user_message(uid, uid, TEXTS[k % len(TEXTS)])
            start = time.time()
            sent = fake.wait_for(lambda m=message: fake.replies_to(m), timeout=300)[0]
            with lock:
                latencies.append(sent.at - start)

    wall = _run_threads([base + u for u in range(users)], user)
    return {"replies": len(latencies), "replies_per_s": round(len(latencies) / wall, 2)} | (
        percentiles(latencies)
    )


def bare_pipeline(redis_url: str, users: int, each: int, base: int) -> dict[str, Any]:
    client = redis.Redis.from_url(redis_url)
    celery = sender(redis_url)
    arrived: dict[tuple[int, int], float] = {}
    cond = threading.Condition()
    stop = threading.Event()

    def read_stream() -> None:
        last = "$"
        reader = redis.Redis.from_url(redis_url)
        while not stop.is_set():
            for _, entries in reader.xread({REPLIES_STREAM: last}, block=200) or []:
                for entry_id, fields in entries:
                    last = entry_id
                    event = ReplyEvent.model_validate_json(fields[b"event"])
                    with cond:
                        arrived[(event.chat_id, event.message_id)] = time.time()
                        cond.notify_all()

    reader = threading.Thread(target=read_stream, daemon=True)
    reader.start()
    time.sleep(0.3)  # the reader's "$" is in place before anything is sent
    latencies: list[float] = []

    def user(uid: int) -> None:
        for k in range(each):
            request = ReplyRequest(
                chat_id=uid, user_id=uid, message_id=k + 1, text=TEXTS[k % len(TEXTS)]
            )
            start = time.time()
            send_reply(client, celery, request)
            key = (uid, k + 1)
            with cond:
                cond.wait_for(lambda key=key: key in arrived, timeout=300)  # type: ignore[misc]
                latencies.append(arrived[key] - start)

    wall = _run_threads([base + u for u in range(users)], user)
    stop.set()
    reader.join()
    return {"replies": len(latencies), "replies_per_s": round(len(latencies) / wall, 2)} | (
        percentiles(latencies)
    )


def _run_threads(uids: list[int], target: Any) -> float:
    threads = [threading.Thread(target=target, args=(uid,)) for uid in uids]
    start = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="models/default", help="checkpoint folder")
    parser.add_argument(
        "--scale", type=int, default=0, help="also run 100 users with this many workers"
    )
    args = parser.parse_args()
    result: dict[str, Any] = {"model": args.model}
    result["1_worker"] = run_stack(args.model, workers=1, levels=LEVELS)
    if args.scale > 1:
        key = f"{args.scale}_workers"
        result[key] = run_stack(args.model, workers=args.scale, levels={100: LEVELS[100]})
        one, many = result["1_worker"]["100_users"], result[key]["100_users"]
        result["scaling_100_users"] = round(
            many["telegram_to_telegram"]["replies_per_s"]
            / one["telegram_to_telegram"]["replies_per_s"],
            2,
        )
    print(json.dumps(result, indent=2))


def run_stack(model: str, workers: int, levels: dict[int, int]) -> dict[str, Any]:
    """Fresh Redis db, database, fake server, ``workers`` worker processes and one bot."""
    redis_url = scratch_redis_url()
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        db_url = f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        upgrade(db_url)
        fake = FakeTelegram().start()
        stack.callback(fake.stop)
        env = bot_env(
            fake.token,
            fake.base_url,
            db_url,
            Path(model),
            REDIS_URL=redis_url,
            BOT_RATE_LIMIT="1000",
            BOT_REPLY_TIMEOUT_S="300",
        )
        for i in range(workers):
            stack.enter_context(worker_process(env, Path(tmp) / f"worker{i}.log"))
        stack.enter_context(bot_process(env, Path(tmp) / "bot.log"))
        fake.wait_for(lambda: "getUpdates" in fake.calls, timeout=120)
        through_telegram(fake, workers, 2, base=900_000)  # warm-up: model loads, connections
        for level, (users, each) in enumerate(levels.items()):
            base = 10_000 * (level + 1)
            telegram = through_telegram(fake, users, each, base)
            bare = bare_pipeline(redis_url, users, each, base + 5_000)
            result[f"{users}_users"] = {
                "telegram_to_telegram": telegram,
                "bare_pipeline": bare,
                "bot_adds_p50": round(telegram["p50_ms"] / bare["p50_ms"] - 1, 3),
            }
    return result


if __name__ == "__main__":
    main()
