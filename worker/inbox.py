"""The chat's pending messages in Redis: what the worker must answer, in order."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from s2s_contract.tasks import ReplyRequest, pending_key

log = logging.getLogger(__name__)


class ChatInbox:
    def __init__(self, redis: Any) -> None:
        self.redis = redis

    def due(self, request: ReplyRequest, answered: Callable[[], bool]) -> list[ReplyRequest]:
        """The chat's pending messages up to and including ``request``, oldest first.
        A request that is not pending was either drained by an earlier task (``answered()``:
        nothing to do) or sent without registering (answer it alone); only then is the
        store asked."""
        key = pending_key(request.chat_id)
        pending = self.redis.hgetall(key)
        messages = []
        for raw_id, raw in pending.items():
            try:
                message = ReplyRequest.model_validate_json(raw)
            except ValidationError:
                log.error("dropping a malformed pending message of chat %s", request.chat_id)
                self.redis.hdel(key, raw_id)
                continue
            if message.message_id <= request.message_id:
                messages.append(message)
        if not any(m.message_id == request.message_id for m in messages) and not answered():
            messages.append(request)
        return sorted(messages, key=lambda m: m.message_id)

    def done(self, request: ReplyRequest) -> None:
        self.redis.hdel(pending_key(request.chat_id), str(request.message_id))

    def forget(self, user_id: int, chat_ids: list[int]) -> int:
        """Drops the user's unanswered messages (their text) from the chats' inboxes;
        returns how many. Other members' messages in a group stay."""
        dropped = 0
        for chat_id in chat_ids:
            key = pending_key(chat_id)
            for raw_id, raw in self.redis.hgetall(key).items():
                try:
                    theirs = ReplyRequest.model_validate_json(raw).user_id == user_id
                except ValidationError:
                    theirs = False
                if theirs:
                    dropped += self.redis.hdel(key, raw_id)
        return dropped
