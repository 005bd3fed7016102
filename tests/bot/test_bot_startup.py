"""The bot's start when Telegram is unreachable or refuses the token: it waits with backoff
(alive, heartbeat fresh, one log line per attempt) instead of exiting into a crash loop."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from bot.app import wait_for_telegram
from tests.utils.fake_telegram import BOT_USERNAME, FakeTelegram
from tests.utils.services import free_port, s2s_process, wait_for


def test_waits_with_growing_delays_until_telegram_answers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    heartbeat = tmp_path / "heartbeat"
    api_url = f"http://127.0.0.1:{port}/bot"  # nobody listens yet: connections are refused
    fakes: list[FakeTelegram] = []

    async def scenario() -> str:
        waiting = asyncio.create_task(
            wait_for_telegram(
                FakeTelegram.token, api_url, heartbeat, first_delay_s=0.1, max_delay_s=0.4
            )
        )
        while caplog.text.count("Telegram unreachable") < 4:
            assert not waiting.done()
            await asyncio.sleep(0.05)
        fakes.append(FakeTelegram(port=port).start())  # Telegram comes back
        return await asyncio.wait_for(waiting, timeout=10)

    caplog.set_level(logging.WARNING, logger="bot.app")
    try:
        assert asyncio.run(scenario()) == BOT_USERNAME
    finally:
        for fake in fakes:
            fake.stop()
    lines = [r.getMessage() for r in caplog.records if "Telegram unreachable" in r.getMessage()]
    assert lines[0].startswith("Telegram unreachable (attempt 1:")
    assert lines[:4] == sorted(lines[:4])  # attempt 1, 2, 3, 4 in order, one line each
    delays = [float(line.rsplit("next try in ", 1)[1].split()[0]) for line in lines]
    assert delays == sorted(delays) and delays[-1] <= 0.4 + 1e-9  # doubles, then capped
    assert heartbeat.exists()  # healthy while it waits
    assert fakes[0].calls == ["getMe"]


def test_bot_process_stays_up_while_telegram_is_unreachable(tmp_path: Path) -> None:
    heartbeat, log_path = tmp_path / "heartbeat", tmp_path / "bot.log"
    env = {
        "TELEGRAM_TOKEN": "123456:TEST-TOKEN",
        "TELEGRAM_API_URL": f"http://127.0.0.1:{free_port()}/bot",  # nobody listens
        "BOT_HEARTBEAT_FILE": str(heartbeat),
    }
    with s2s_process(["bot"], env, log_path) as proc:
        wait_for(
            lambda: "attempt 3:" in log_path.read_text() or proc.poll() is not None,
            timeout=30,
            what="three start attempts",
        )
        assert proc.poll() is None, log_path.read_text()
        assert heartbeat.exists()
        assert "Traceback" not in log_path.read_text()


def test_a_refused_token_ends_the_bot_with_one_line(tmp_path: Path) -> None:
    fake = FakeTelegram().start()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "s2s_cli", "bot"],
            env={
                "PATH": "/usr/bin:/bin",
                "TELEGRAM_TOKEN": "999:WRONG",
                "TELEGRAM_API_URL": fake.base_url,
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        fake.stop()
    assert result.returncode != 0
    assert "Telegram refused TELEGRAM_TOKEN: check it with @BotFather" in result.stderr
    assert "Traceback" not in result.stderr
