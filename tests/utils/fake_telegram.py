"""A local fake of the Telegram Bot API, enough for the real python-telegram-bot client.

It answers over HTTP (on 127.0.0.1 unless told otherwise) the way Telegram does
(``{"ok": true, "result": ...}``, errors with ``error_code`` and ``description``, 429 with
``parameters.retry_after``), holds updates for long polling, and records what the bot sent
so tests can wait for it. Scripted users post messages, stickers and button presses through
its methods.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

BOT_ID = 777
BOT_USERNAME = "s2s_test_bot"
RAW_STRING_FIELDS = {"text", "action", "url", "secret_token", "callback_query_id", "parse_mode"}


@dataclass
class Sent:
    """One sendMessage the bot made (after the server accepted it)."""

    chat_id: int
    text: str
    message_id: int
    reply_to: int | None
    buttons: list[dict[str, Any]]
    at: float


@dataclass
class FakeTelegram:
    token: str = "123456:TEST-TOKEN"
    updates: list[dict[str, Any]] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    actions: list[tuple[int, str]] = field(default_factory=list)
    answered: list[str] = field(default_factory=list)
    answers: dict[str, str] = field(default_factory=dict)  # callback query id → text shown
    edits: list[dict[str, Any]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    webhook: str = ""
    limit_next: int = 0  # answer this many coming sendMessage calls with 429
    limited: list[int] = field(default_factory=list)  # the chats whose sendMessage got a 429
    failing: int = 0  # an HTTP status (e.g. 502) every sendMessage gets while set
    texts: list[str] = field(default_factory=list)  # every text a user sent
    retry_after: int = 1
    host: str = "127.0.0.1"  # 0.0.0.0: reachable from containers (the deployment smoke run)
    port: int = 0  # 0: any free port

    def __post_init__(self) -> None:
        self.cond = threading.Condition()
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self.server = ThreadingHTTPServer((self.host, self.port), _handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        """What TELEGRAM_API_URL takes (python-telegram-bot appends the token)."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/bot"

    def start(self) -> FakeTelegram:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- scripted users -------------------------------------------------------------------

    def user_message(
        self,
        chat_id: int,
        user_id: int,
        text: str | None = None,
        chat_type: str = "private",
        reply_to: dict[str, Any] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Queues a message from a user and returns it (its message_id identifies it)."""
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": chat_type, **_chat_title(chat_type)},
            "from": {"id": user_id, "is_bot": False, "first_name": f"user{user_id}"},
            **extra,
        }
        if text is not None:
            message["text"] = text
            self.texts.append(text)
            mention = f"@{BOT_USERNAME}"
            if mention in text:
                offset = text.index(mention)
                message["entities"] = [
                    {"type": "mention", "offset": offset, "length": len(mention)}
                ]
            if text.startswith("/"):
                command = text.split()[0]
                message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        self._push({"message": message})
        return message

    def crowd(self, users: int, each: int, first_id: int, text: str) -> list[dict[str, Any]]:
        """``users`` private chats (ids from ``first_id``) each sending ``each`` messages,
        interleaved as they would arrive."""
        return [
            self.user_message(first_id + u, first_id + u, text.format(i=i, u=u))
            for i in range(each)
            for u in range(users)
        ]

    def answered_once(self, sent: list[dict[str, Any]], timeout: float) -> bool:
        """Waits until every message has a reply; whether none got two."""
        self.wait_for(lambda: all(self.replies_to(m) for m in sent), timeout=timeout)
        return all(len(self.replies_to(m)) == 1 for m in sent)

    def edit(self, message: dict[str, Any], text: str) -> None:
        edited = {**message, "text": text, "edit_date": int(time.time())}
        self._push({"edited_message": edited})

    def redeliver(self, update_kind: str, payload: dict[str, Any]) -> None:
        """Telegram sends an update again (after a crash or a slow webhook answer)."""
        self._push({update_kind: payload})

    def press(self, user_id: int, sent: Sent, data: str) -> str:
        query_id = f"q{next(self._update_ids)}"
        message = self._as_message(sent)
        self._push(
            {
                "callback_query": {
                    "id": query_id,
                    "from": {"id": user_id, "is_bot": False, "first_name": f"user{user_id}"},
                    "chat_instance": str(sent.chat_id),
                    "data": data,
                    "message": message,
                }
            }
        )
        return query_id

    def _as_message(self, sent: Sent) -> dict[str, Any]:
        chat_type = "private" if sent.chat_id > 0 else "group"
        return {
            "message_id": sent.message_id,
            "date": int(sent.at),
            "chat": {"id": sent.chat_id, "type": chat_type, **_chat_title(chat_type)},
            "from": {"id": BOT_ID, "is_bot": True, "first_name": "s2s", "username": BOT_USERNAME},
            "text": sent.text,
        }

    def _push(self, update: dict[str, Any]) -> None:
        with self.cond:
            self.updates.append({"update_id": next(self._update_ids), **update})
            self.cond.notify_all()

    # --- waiting ----------------------------------------------------------------------------

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"fake Telegram: condition not met in {timeout} s")
                self.cond.wait(min(left, 0.2))

    def replies_to(self, message: dict[str, Any]) -> list[Sent]:
        chat = message["chat"]["id"]
        return [s for s in self.sent if s.chat_id == chat and s.reply_to == message["message_id"]]

    def to_chat(self, chat_id: int) -> list[Sent]:
        return [s for s in self.sent if s.chat_id == chat_id]

    # --- the Bot API --------------------------------------------------------------------------

    def call(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.calls.append(method)
        handler = getattr(self, f"api_{method}", None)
        if handler is None:
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        return handler(params)  # type: ignore[no-any-return]

    def api_getMe(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        me = {
            "id": BOT_ID,
            "is_bot": True,
            "first_name": "s2s",
            "username": BOT_USERNAME,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        return _ok(me)

    def api_getUpdates(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        timeout = float(params.get("timeout") or 0)
        limit = int(params.get("limit") or 100)
        deadline = time.monotonic() + timeout
        with self.cond:
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
            while not self.updates and time.monotonic() < deadline:
                self.cond.wait(min(deadline - time.monotonic(), 0.5))
            return _ok(self.updates[:limit])

    def api_sendMessage(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.cond:
            if self.failing:
                return self.failing, {
                    "ok": False,
                    "error_code": self.failing,
                    "description": "Bad Gateway",
                }
            if self.limit_next > 0:
                self.limit_next -= 1
                self.limited.append(int(params.get("chat_id", 0)))
                return 429, {
                    "ok": False,
                    "error_code": 429,
                    "description": f"Too Many Requests: retry after {self.retry_after}",
                    "parameters": {"retry_after": self.retry_after},
                }
        text = str(params.get("text", ""))
        if not text.strip():
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: text empty"}
        if len(text) > 4096:
            return 400, {"ok": False, "error_code": 400, "description": "message is too long"}
        reply = params.get("reply_parameters") or {}
        reply_to = reply.get("message_id") or params.get("reply_to_message_id")
        markup = params.get("reply_markup") or {}
        buttons = [b for row in markup.get("inline_keyboard", []) for b in row]
        sent = Sent(
            int(params["chat_id"]), text, next(self._message_ids), reply_to, buttons, time.time()
        )
        with self.cond:
            self.sent.append(sent)
            self.cond.notify_all()
        return _ok(self._as_message(sent))

    def api_sendChatAction(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.cond:
            self.actions.append((int(params["chat_id"]), str(params["action"])))
            self.cond.notify_all()
        return _ok(True)

    def api_answerCallbackQuery(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.cond:
            self.answered.append(str(params["callback_query_id"]))
            self.answers[str(params["callback_query_id"])] = str(params.get("text") or "")
            self.cond.notify_all()
        return _ok(True)

    def api_editMessageReplyMarkup(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.cond:
            self.edits.append(params)
            self.cond.notify_all()
        return _ok(True)

    def api_editMessageText(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return self.api_editMessageReplyMarkup(params)

    def api_setWebhook(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.webhook = str(params.get("url", ""))
        return _ok(True)

    def api_deleteWebhook(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.webhook = ""
        return _ok(True)

    def api_setMyCommands(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return _ok(True)


def _chat_title(chat_type: str) -> dict[str, str]:
    return {} if chat_type == "private" else {"title": "test group"}


def _ok(result: Any) -> tuple[int, dict[str, Any]]:
    return 200, {"ok": True, "result": result}


def _parse_body(content_type: str, body: bytes) -> dict[str, Any]:
    """python-telegram-bot posts form fields whose non-string values are JSON-encoded."""
    if not body:
        return {}
    if content_type.startswith("application/json"):
        return dict(json.loads(body))
    fields = {k: v[-1] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
    parsed: dict[str, Any] = {}
    for key, value in fields.items():
        if key in RAW_STRING_FIELDS:
            parsed[key] = value
            continue
        try:
            parsed[key] = json.loads(value)
        except json.JSONDecodeError:
            parsed[key] = value
    return parsed


def _handler(fake: FakeTelegram) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self._serve()

        def do_GET(self) -> None:
            self._serve()

        def _serve(self) -> None:
            prefix = f"/bot{fake.token}/"
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if not self.path.startswith(prefix):
                status, payload = (
                    401,
                    {"ok": False, "error_code": 401, "description": "Unauthorized"},
                )
            else:
                params = _parse_body(self.headers.get("Content-Type", ""), body)
                status, payload = fake.call(self.path[len(prefix) :].split("?")[0], params)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            # A client may give up first (a bot shutting down mid long poll).
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: the test's own assertions tell the story

    return Handler


# --- by hand: `python -m tests.utils.fake_telegram` ------------------------------------------

CHAT_ID = 1  # the one private chat a person at the terminal writes in


def talk(fake: FakeTelegram, lines: Any, out: Any, timeout: float = 120.0) -> None:
    """Sends each line as a message of one user and prints what the bot answers to it (or
    says that nothing came within ``timeout`` seconds)."""
    for line in lines:
        text = line.strip()
        if not text:
            continue
        message = fake.user_message(CHAT_ID, CHAT_ID, text)
        try:
            fake.wait_for(functools.partial(fake.replies_to, message), timeout=timeout)
        except TimeoutError:
            print(f"(no reply within {timeout:.0f} s: is `s2s bot` running?)", file=out)
            continue
        for sent in fake.replies_to(message):
            print(f"bot> {sent.text}", file=out, flush=True)


def main() -> None:
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        description="A local fake Telegram: run `s2s bot` against it and chat from here."
    )
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--token", default="123:abc", help="what TELEGRAM_TOKEN must say")
    args = parser.parse_args()
    fake = FakeTelegram(token=args.token, port=args.port).start()
    print(
        f"fake Telegram on {fake.base_url}; start the bot with\n"
        f"  TELEGRAM_TOKEN={args.token} TELEGRAM_API_URL={fake.base_url} .venv/bin/s2s bot\n"
        "then type messages here (Ctrl-D ends).",
        file=sys.stderr,
    )
    try:
        talk(fake, sys.stdin, sys.stdout)
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
