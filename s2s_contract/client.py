"""How a sender (the bot, a test, a benchmark) asks for a reply: register the message as
pending for its chat, then send the task by name. Registering first lets the worker answer
a chat's messages in the order they were sent, whichever task arrives first."""

from __future__ import annotations

import time
from typing import Any

from s2s_contract.tasks import REPLY_TASK, TASK_QUEUES, ReplyRequest, pending_key

PENDING_TTL_S = 24 * 3600


def send_reply(redis: Any, celery: Any, request: ReplyRequest) -> None:
    if request.enqueued_at is None:  # the inbox's sweeper needs to know its age
        request = request.model_copy(update={"enqueued_at": time.time()})
    key = pending_key(request.chat_id)
    pipe = redis.pipeline()
    pipe.hset(key, str(request.message_id), request.model_dump_json())
    pipe.expire(key, PENDING_TTL_S)
    pipe.execute()
    celery.send_task(REPLY_TASK, args=[request.model_dump()], queue=TASK_QUEUES[REPLY_TASK])
