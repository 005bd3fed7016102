"""Messages sent the way the bot sends them, and the replies the workers published: what the
fault tests inject and count."""

from __future__ import annotations

from collections import Counter

import redis

from s2s_contract.client import send_reply
from s2s_contract.settings import Settings
from s2s_contract.tasks import REPLIES_STREAM, ReplyEvent, ReplyRequest
from worker.celery_app import create_app


def send_messages(url: str, messages: list[tuple[int, int, str]]) -> None:
    """As the bot sends: each (chat, message id, text) registered as pending, then queued."""
    producer = create_app(Settings(redis_url=url))
    client = redis.Redis.from_url(url)
    for chat, message_id, text in messages:
        payload = {"chat_id": chat, "user_id": chat, "message_id": message_id, "text": text}
        send_reply(client, producer, ReplyRequest.model_validate(payload))
    producer.close()
    client.close()


def published(url: str) -> Counter[tuple[int, int]]:
    """How often each (chat, message id) was answered on the replies stream (nothing while
    Redis is unreachable)."""
    try:
        client = redis.Redis.from_url(url)
        entries = client.xrange(REPLIES_STREAM)
        client.close()
    except redis.exceptions.RedisError:
        return Counter()
    events = [ReplyEvent.model_validate_json(fields[b"event"]) for _, fields in entries]
    return Counter((e.chat_id, e.message_id) for e in events)
