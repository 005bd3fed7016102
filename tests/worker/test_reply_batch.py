"""A batch of messages answered as one unit, in process: a real engine on a tiny checkpoint
and a real store; the publisher records what Redis would be sent."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from s2s_contract.tasks import ReplyEvent, ReplyRequest
from s2s_core import Hypothesis, Tokenizer
from s2s_core.corpora import Turn
from s2s_core.decoding import word_table
from s2s_core.special import EOS_ID
from tests.conftest import tiny_model
from worker.engine import Decoded, DecodeItem, Engine, LoadedModel, default_source
from worker.replies import decode_config
from worker.service import ReplyService, _exchange, encoder_input
from worker.store import DialogueStore


class RecordingPublisher:
    def __init__(self) -> None:
        self.calls: list[list[ReplyEvent]] = []

    def publish(self, events: list[ReplyEvent]) -> None:
        self.calls.append(events)

    def announce_model(self, info: dict[str, Any]) -> None:
        pass

    def forget(self, user_id: int) -> int:
        return 0


class SpyEngine(Engine):
    """The real engine; records each batch it is handed, and can fail chosen sources."""

    def __init__(self, checkpoint: Path) -> None:
        super().__init__(default_source(checkpoint), "cpu")
        self.batches: list[list[DecodeItem]] = []
        self.failing: set[tuple[int, ...]] = set()

    def submit(self, items: Sequence[DecodeItem]) -> list[Future[Decoded]]:
        self.batches.append(list(items))
        futures = super().submit([i for i in items if tuple(i.source) not in self.failing])
        it = iter(futures)
        out: list[Future[Decoded]] = []
        for item in items:
            if tuple(item.source) in self.failing:
                failed: Future[Decoded] = Future()
                failed.set_exception(ValueError("cannot decode this one"))
                out.append(failed)
            else:
                out.append(next(it))
        return out


@pytest.fixture
def service(store: DialogueStore, checkpoint_dir: Path) -> Iterator[ReplyService]:
    engine = SpyEngine(checkpoint_dir)
    yield ReplyService(store, engine, RecordingPublisher())
    engine.close()


def ask(chat: int, message: int, text: str) -> ReplyRequest:
    return ReplyRequest(chat_id=chat, user_id=chat, message_id=message, text=text)


def test_one_batch_one_decode_per_round_one_publish(service: ReplyService) -> None:
    """Three chats, one with three messages: three rounds, each chat's next message in
    each; a chat's later message is decoded with its earlier reply in the context."""
    engine, publisher = service.engine, service.publisher
    assert isinstance(engine, SpyEngine) and isinstance(publisher, RecordingPublisher)
    batch = [ask(1, 3, "and then?"), ask(2, 1, "hi"), ask(1, 1, "hello"), ask(3, 1, "yo")]
    batch += [ask(1, 2, "how are you")]
    result = service.reply_batch(batch)
    assert not result.failed and len(result.replies) == 5
    assert [len(b) for b in engine.batches] == [3, 1, 1]
    serving = engine.loaded()
    first, second = result.replies[(1, 1)], result.replies[(1, 2)]
    expected = encoder_input(
        serving.tokenizer,
        serving.meta,
        [Turn("hello", "user"), Turn(first.text, "bot")],
        "how are you",
    )
    assert engine.batches[1][0].source == expected
    assert len(publisher.calls) == 1
    assert [(e.chat_id, e.message_id) for e in publisher.calls[0]] == [
        (1, 1),
        (1, 2),
        (1, 3),
        (2, 1),
        (3, 1),
    ]
    assert publisher.calls[0][1].text == second.text


def test_a_repeat_is_published_again_not_decoded_or_stored_again(
    service: ReplyService, store: DialogueStore
) -> None:
    engine, publisher = service.engine, service.publisher
    assert isinstance(engine, SpyEngine) and isinstance(publisher, RecordingPublisher)
    first = service.reply(ask(5, 1, "hello"))
    result = service.reply_batch([ask(5, 1, "hello"), ask(5, 1, "hello"), ask(5, 2, "again")])
    assert result.replies[(5, 1)] == type(first)(**{**first.__dict__, "created": False})
    assert [len(b) for b in engine.batches] == [1, 1]  # only the new message decoded
    assert [e.message_id for e in publisher.calls[-1]] == [1, 2]
    assert store.recent_context(5, 10) == [
        ("user", "hello"),
        ("bot", first.text),
        ("user", "again"),
        ("bot", result.replies[(5, 2)].text),
    ]


def test_a_message_that_cannot_be_decoded_fails_alone_with_its_chats_later_ones(
    service: ReplyService,
) -> None:
    engine, publisher = service.engine, service.publisher
    assert isinstance(engine, SpyEngine) and isinstance(publisher, RecordingPublisher)
    serving = engine.loaded()
    engine.failing.add(tuple(encoder_input(serving.tokenizer, serving.meta, [], "poison")))
    result = service.reply_batch([ask(7, 1, "poison"), ask(7, 2, "after"), ask(8, 1, "fine")])
    assert set(result.failed) == {(7, 1), (7, 2)}  # the later one waits with it, in order
    assert set(result.replies) == {(8, 1)}
    assert [(e.chat_id, e.message_id) for e in publisher.calls[-1]] == [(8, 1)]
    with pytest.raises(ValueError, match="cannot decode"):
        service.reply(ask(7, 1, "poison"))


def test_the_choice_sees_the_users_story_and_the_models_target_length(
    tiny_tokenizer: Tokenizer,
) -> None:
    """The worker hands the choice the user's turn before the message (cheering while a
    sad story goes on is a defect) and the checkpoint's target length (a reply that stopped
    there mid-sentence is cut)."""
    serving = LoadedModel(
        "v1",
        tiny_model(tiny_tokenizer.vocab_size),
        tiny_tokenizer,
        {"data": {"max_tgt_len": 32}},
        word_table(tiny_tokenizer),
    )
    cheer = Hypothesis([*tiny_tokenizer.encode("that's so cool"), EOS_ID], -0.1, -0.1)
    asks = Hypothesis([*tiny_tokenizer.encode("what happened"), EOS_ID], -0.5, -0.5)
    story = [("user", "i broke my wrist"), ("bot", "how?")]
    cfg = decode_config("varied")
    exchange = _exchange(
        ask(1, 1, "now i have a plate in it"),
        serving,
        cfg,
        Decoded([cheer, asks], "v1", 1, 1.0),
        story,
    )
    assert exchange.reply_text == "what happened"
    stopped = Hypothesis(
        [*tiny_tokenizer.encode("fine thanks. " + "so " * 40)[:29], EOS_ID], -1, -1
    )
    exchange = _exchange(ask(1, 2, "hi"), serving, cfg, Decoded([stopped], "v1", 1, 1.0), [])
    assert exchange.reply_text == "fine thanks."


def test_the_choice_remembers_more_of_the_chat_than_the_model_reads(
    service: ReplyService,
) -> None:
    """The bot's own replies of the last RECENT_TURNS turns are never repeated, though the
    model reads only its context window."""
    from worker.service import RECENT_TURNS

    engine = service.engine
    assert isinstance(engine, SpyEngine)
    said = []
    messages = RECENT_TURNS // 2 + 2  # more turns than the choice reads
    for message in range(1, messages + 1):
        said.append(service.reply(ask(5, message, f"message number {message}")).text)
    last = engine.batches[-1][0]
    assert last.conversation is not None and len(last.conversation) == RECENT_TURNS + 1
    assert last.conversation[-1] == f"message number {messages}"
    assert said[-1] == "…" or said[-1] not in said[-RECENT_TURNS // 2 - 1 : -1]
