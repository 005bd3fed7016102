"""The default style in the worker: the n-best beside corpus replies under one ranker, each
candidate's source stored; never another user's words among the candidates."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from s2s_contract.styles import Style
from s2s_contract.tasks import ReplyRequest
from s2s_core import Tokenizer, save_checkpoint
from s2s_core.hybrid import build_vectors
from s2s_core.ranker import Ranker
from s2s_core.retrieval import CorpusIndex, cache_folder, corpus_pairs
from tests.conftest import tiny_model
from tests.worker.test_reply_batch import RecordingPublisher
from worker.engine import Engine, default_source
from worker.service import ReplyService
from worker.store import DialogueStore
from worker.store.models import Generation

pytestmark = pytest.mark.slow  # the corpus (~10 s once per session) and the ranker


@pytest.fixture(scope="session")
def corpus_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A retrieval cache holding an index of the first 3,000 corpus pairs where the worker
    looks for the whole corpus', and the packaged ranker's vectors of their replies: the
    worker's own path, at a size a test can embed."""
    cache = tmp_path_factory.mktemp("retrieval")
    index = CorpusIndex.build(corpus_pairs()[:3000])
    index.save(cache_folder(cache))
    build_vectors(CorpusIndex.load(cache_folder(cache)), Ranker.load(), progress=False)
    return cache


@pytest.fixture
def service(
    store: DialogueStore, tmp_path: Path, tiny_tokenizer: Tokenizer, corpus_cache: Path
) -> Iterator[ReplyService]:
    meta = {"data": {"max_src_len": 32, "max_tgt_len": 16}, "hybrid": {"retrieved": 8}}
    ckpt = save_checkpoint(
        tmp_path / "hybrid", tiny_model(tiny_tokenizer.vocab_size), tiny_tokenizer, meta
    )
    engine = Engine(default_source(ckpt), "cpu", corpus_cache=corpus_cache)
    yield ReplyService(store, engine, RecordingPublisher())
    engine.close()


def ask(chat: int, message: int, text: str, style: Style = Style.HYBRID) -> ReplyRequest:
    return ReplyRequest(chat_id=chat, user_id=chat, message_id=message, text=text, style=style)


def generations(store: DialogueStore) -> list[Generation]:
    with store.reads() as s:
        return list(s.scalars(select(Generation).order_by(Generation.id)))


def test_the_default_style_ranks_corpus_replies_beside_the_generated_ones(
    service: ReplyService, store: DialogueStore
) -> None:
    assert ReplyRequest(chat_id=1, user_id=1, message_id=1, text="x").style == Style.HYBRID
    hybrid = service.engine.loaded().hybrid
    assert hybrid is not None and hybrid.vectors is not None  # the cached corpus vectors
    service.reply_batch([ask(1, 1, "I just adopted a kitten!"), ask(2, 1, "what is up")])
    for generation in generations(store):
        sources = [c["source"] for c in generation.candidates]
        assert "retrieved" in sources and "generated" in sources
        scores = [c["score"] for c in generation.candidates]
        assert scores == sorted(scores, reverse=True)  # the ranker's order
        chosen = generation.decoding["chosen"]
        assert generation.decoding["source"] == generation.candidates[chosen]["source"]
        assert generation.decoding["hybrid"]["ranker"] == "all-MiniLM-L6-v2"


def test_a_pure_seq2seq_style_gets_no_corpus_replies(
    service: ReplyService, store: DialogueStore
) -> None:
    service.reply(ask(1, 1, "I just adopted a kitten!", Style.VARIED))
    (generation,) = generations(store)
    assert {c["source"] for c in generation.candidates} == {"generated"}
    assert generation.decoding["source"] == "generated" and "hybrid" not in generation.decoding


def test_another_users_words_never_become_a_candidate(
    service: ReplyService, store: DialogueStore
) -> None:
    """A logged conversation whose words match the next message best is not retrievable:
    only the public corpus is indexed."""
    secret = "my grandmother's zucchini lasagna recipe uses nutmeg and ricotta"
    service.reply(ask(7, 1, secret))
    service.reply(ask(8, 1, "what goes in a zucchini lasagna with nutmeg and ricotta?"))
    later = generations(store)[-1]
    texts = [c["text"].lower() for c in later.candidates]
    assert sum(c["source"] == "retrieved" for c in later.candidates) >= 1
    assert not any("grandmother" in t or "zucchini lasagna recipe" in t for t in texts)


def test_a_worker_that_cannot_build_the_pool_still_answers(
    store: DialogueStore, tmp_path: Path, tiny_tokenizer: Tokenizer
) -> None:
    """An unwritable retrieval cache is logged; the model answers with its own replies."""
    meta = {"data": {"max_src_len": 32}, "hybrid": {"retrieved": 8}}
    ckpt = save_checkpoint(
        tmp_path / "m", tiny_model(tiny_tokenizer.vocab_size), tiny_tokenizer, meta
    )
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    engine = Engine(default_source(ckpt), "cpu", corpus_cache=blocked)
    try:
        reply = ReplyService(store, engine, RecordingPublisher()).reply(ask(1, 1, "hi there"))
    finally:
        engine.close()
    assert reply.text and engine.loaded().hybrid is None
    (generation,) = generations(store)
    assert generation.decoding["source"] in ("generated", "fallback", "persona")


def test_a_refine_model_decodes_on_what_retrieval_finds(
    store: DialogueStore, tmp_path: Path, tiny_tokenizer: Tokenizer, corpus_cache: Path
) -> None:
    """A retrieve-and-refine checkpoint: every style's decodes read corpus replies found for
    the conversation (stored with the reply), and the hybrid pool still adds its own."""
    from s2s_core.refine import with_marker

    meta = {
        "data": {"max_src_len": 32, "max_tgt_len": 16, "refine_alpha": 0.25},
        "hybrid": {"retrieved": 8},
    }
    model = with_marker(tiny_model(tiny_tokenizer.vocab_size))
    ckpt = save_checkpoint(tmp_path / "refine", model, tiny_tokenizer, meta)
    engine = Engine(default_source(ckpt), "cpu", corpus_cache=corpus_cache)
    try:
        service = ReplyService(store, engine, RecordingPublisher())
        service.reply(ask(1, 1, "I just adopted a kitten!", Style.VARIED))
        service.reply(ask(2, 1, "I just adopted a kitten!"))
    finally:
        engine.close()
    varied, hybrid = generations(store)
    assert len(varied.decoding["refined_from"]) == 3  # three retrieved replies, three decodes
    assert {c["source"] for c in varied.candidates} == {"generated"}
    assert "retrieved" in {c["source"] for c in hybrid.candidates}
    assert hybrid.decoding["refined_from"] == varied.decoding["refined_from"]


def test_a_refine_model_trained_on_the_rankers_picks_reads_them_at_reply_time(
    store: DialogueStore, tmp_path: Path, tiny_tokenizer: Tokenizer, corpus_cache: Path
) -> None:
    """``refine_pick: ranker``: the decodes read the ranker's best three of BM25's first 20
    (with the pool's corpus vectors), not BM25's first three."""
    from s2s_core.refine import RANKED_FROM, with_marker

    meta = {
        "data": {"max_src_len": 32, "max_tgt_len": 16, "refine_alpha": 0.25},
        "hybrid": {"retrieved": 8},
    }
    meta["data"]["refine_pick"] = "ranker"
    model = with_marker(tiny_model(tiny_tokenizer.vocab_size))
    ckpt = save_checkpoint(tmp_path / "refine", model, tiny_tokenizer, meta)
    engine = Engine(default_source(ckpt), "cpu", corpus_cache=corpus_cache)
    try:
        refiner = engine.loaded().refiner
        assert refiner is not None and refiner.pick is not None and refiner.index is not None
        ReplyService(store, engine, RecordingPublisher()).reply(
            ask(1, 1, "I just adopted a kitten!", Style.VARIED)
        )
        hybrid = engine.loaded().hybrid
    finally:
        engine.close()
    (generation,) = generations(store)
    turns = ["I just adopted a kitten!"]
    found = refiner.index.search([turns], RANKED_FROM)[0]
    assert hybrid is not None
    cosines = hybrid.ranker.scores(turns, [[h.text for h in found]])[0]
    best = [h.text for _, h in sorted(zip(cosines, found, strict=True), key=lambda p: -p[0])]
    assert generation.decoding["refined_from"] == best[:3]
    assert best[:3] != [h.text for h in found[:3]]  # not BM25's own order
