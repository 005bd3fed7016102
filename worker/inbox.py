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

    def due(
        self,
        requests: list[ReplyRequest],
        answered: Callable[[list[tuple[int, int]]], set[tuple[int, int]]],
    ) -> list[ReplyRequest]:
        """What to answer for ``requests``: each chat's pending messages up to its newest
        requested one, in message-id order, read in one round trip. A request that is not
        pending was either answered from the inbox by an earlier batch (``answered``: it
        is left alone) or sent without registering (answered here); only those few are
        looked up. A message leaves the inbox when its reply is published."""
        newest: dict[int, int] = {}
        for request in requests:
            newest[request.chat_id] = max(newest.get(request.chat_id, 0), request.message_id)
        pipe = self.redis.pipeline(transaction=False)
        for chat_id in newest:
            pipe.hgetall(pending_key(chat_id))
        found: dict[tuple[int, int], ReplyRequest] = {}
        for chat_id, pending in zip(newest, pipe.execute(), strict=True):
            for raw_id, raw in pending.items():
                try:
                    message = ReplyRequest.model_validate_json(raw)
                except ValidationError:
                    log.error("dropping a malformed pending message of chat %s", chat_id)
                    self.redis.hdel(pending_key(chat_id), raw_id)
                    continue
                if message.message_id <= newest[chat_id]:
                    found[(chat_id, message.message_id)] = message
        unregistered = {
            (r.chat_id, r.message_id): r for r in requests if (r.chat_id, r.message_id) not in found
        }
        if unregistered:
            done = answered(list(unregistered))
            found.update({k: r for k, r in unregistered.items() if k not in done})
        return [found[key] for key in sorted(found)]

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
