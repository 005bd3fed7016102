"""Webhook mode: the bot registers its URL with the secret, accepts updates that carry the
secret and refuses those that do not."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.utils.fake_telegram import FakeTelegram
from tests.utils.services import bot_env, free_port, s2s_process, wait_for
from worker.store.migrate import upgrade

pytestmark = pytest.mark.slow
SECRET = "s3cret-token_1"


def post(url: str, update: dict[str, object], secret: str | None) -> int:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    request = urllib.request.Request(url, json.dumps(update).encode(), headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except urllib.error.URLError:
        return 0  # not listening yet


def test_webhook_mode_answers_updates_with_the_secret(tmp_path: Path, checkpoint_dir: Path) -> None:
    fake = FakeTelegram().start()
    db_url = f"sqlite:///{tmp_path / 'hook.sqlite3'}"
    upgrade(db_url)
    port = free_port()
    url = f"http://127.0.0.1:{port}/telegram"
    env = bot_env(
        fake.token,
        fake.base_url,
        db_url,
        checkpoint_dir,
        REDIS_URL="",
        TELEGRAM_WEBHOOK_SECRET=SECRET,
    )
    args = ["bot", "--webhook-url", url, "--listen", "127.0.0.1", "--port", str(port)]
    try:
        with s2s_process(args, env, tmp_path / "bot.log"):
            fake.wait_for(lambda: fake.webhook == url, timeout=60)
            message = fake.user_message(9, 9, "hello there")
            update = fake.updates[-1]
            wait_for(lambda: post(url, {"update_id": 1}, "wrong") == 403, 30, "secret checked")
            assert post(url, update, SECRET) == 200
            reply = fake.wait_for(lambda: fake.replies_to(message), timeout=60)[0]
            assert [b["text"] for b in reply.buttons] == ["👍", "👎"]
            assert "getUpdates" not in fake.calls
    finally:
        fake.stop()
