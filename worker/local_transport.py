"""The bot's transport for a one-machine deployment: the reply service in-process.

No Celery, no Redis: a bounded thread pool runs ``ReplyService`` (context from the store,
batched decoding through the engine, storage) and replies come back on an asyncio queue.
One chat's messages are answered in the order they arrived; different chats run in parallel
and share the engine's batches.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from s2s_contract.tasks import (
    FeedbackRequest,
    ForgetRequest,
    ReplyEvent,
    ReplyRequest,
    ResetRequest,
)
from s2s_contract.transport import Delivery
from worker.service import ReplyService, model_summary, reply_event

log = logging.getLogger(__name__)
T = TypeVar("T")


class LocalTransport:
    def __init__(self, service: ReplyService, threads: int = 8) -> None:
        self.service = service
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="reply")
        self.queue: asyncio.Queue[ReplyEvent] = asyncio.Queue()  # binds its loop on first use
        self._chains: dict[int, asyncio.Task[None]] = {}

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def ask(self, request: ReplyRequest) -> None:
        before = self._chains.get(request.chat_id)
        task = asyncio.create_task(self._answer(before, request))
        self._chains[request.chat_id] = task
        task.add_done_callback(lambda t: self._forget_chain(request.chat_id, t))

    def _forget_chain(self, chat_id: int, task: asyncio.Task[None]) -> None:
        if self._chains.get(chat_id) is task:
            del self._chains[chat_id]

    async def _answer(self, before: asyncio.Task[None] | None, request: ReplyRequest) -> None:
        if before is not None:
            await asyncio.wait([before])  # the chat's earlier message first
        try:
            stored = await self._run(self.service.reply, request)
        except Exception:
            # The bot's patience timer apologises; the error is the operator's to see.
            log.exception("reply for chat %s failed", request.chat_id)
            return
        await self.queue.put(reply_event(request, stored))

    async def feedback(self, request: FeedbackRequest) -> None:
        await self._run(self.service.feedback, request)

    async def forget(self, request: ForgetRequest) -> None:
        await self._run(self.service.forget, request)

    async def reset(self, chat_id: int) -> None:
        await self._run(self.service.reset, ResetRequest(chat_id=chat_id))

    async def replies(self) -> AsyncIterator[Delivery]:
        while True:
            event = await self.queue.get()
            yield Delivery(event, _done)

    async def model_info(self) -> dict[str, Any] | None:
        serving = await self._run(self.service.engine.loaded)
        return model_summary(serving.version, serving.meta)

    async def stats(self) -> dict[str, Any]:
        return {"replies in progress": len(self._chains)}

    async def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


async def _done() -> None:
    """Nothing to acknowledge: an in-process reply is not redelivered."""
