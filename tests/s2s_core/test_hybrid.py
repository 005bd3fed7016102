"""The hybrid pool: generated and corpus candidates under one ranker, then the choice."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from s2s_core.choice import Candidate, choose_among
from s2s_core.corpora import Example, Turn
from s2s_core.hybrid import (
    Hybrid,
    HybridConfig,
    build_vectors,
    cached_vectors,
    load_hybrid,
    rank_pools,
)
from s2s_core.ranker import Ranker, conversation_text
from s2s_core.retrieval import CorpusIndex

CORPUS_PAIRS = [
    Example((Turn("hi", "bot"), Turn("I broke my wrist", "user")), "Ouch! How did it happen?"),
    Example((Turn("hi", "bot"), Turn("I broke my phone", "user")), "hey there! how are you?"),
    Example((Turn("hi", "bot"), Turn("my wrist hurts", "user")), "yeah"),
]
CORPUS = CorpusIndex.build(CORPUS_PAIRS)


class ScriptedRanker:
    """Scores each candidate by a table; records what it was asked."""

    name = "scripted"

    def __init__(self, table: dict[str, float]) -> None:
        self.table, self.asked = table, []  # type: ignore[var-annotated]

    def scores(
        self, queries: Sequence[str], candidates: Sequence[Sequence[str]], known: object = None
    ) -> list:
        self.asked.append((list(queries), [list(c) for c in candidates]))
        return [[self.table.get(t, 0.0) for t in texts] for texts in candidates]


def generated(*texts: str) -> list[Candidate]:
    return [Candidate(t, "generated", {"score": -1.0 - i}) for i, t in enumerate(texts)]


def test_one_ranker_orders_generated_and_corpus_replies_for_the_whole_batch() -> None:
    ranker = ScriptedRanker({"Ouch! How did it happen?": 0.9, "That's cool.": 0.5, "yeah": 0.1})
    hybrid = Hybrid(CORPUS, ranker, HybridConfig(retrieved=3))  # type: ignore[arg-type]
    conversations = [["how was your day?", "I broke my wrist"], ["hello"]]
    pools = rank_pools(hybrid, conversations, [generated("That's cool.", "yeah"), []])
    first = pools[0]
    assert [c.text for c in first][:2] == ["Ouch! How did it happen?", "That's cool."]
    assert first[0].source == "retrieved" and "bm25" in first[0].scores
    assert first[1].scores == {"score": 0.5, "decoder": -1.0, "ranker": 0.5}
    assert [c.text for c in first].count("yeah") == 1  # the corpus copy of a generated one goes
    assert len(ranker.asked) == 1  # one ranker call for the batch
    assert ranker.asked[0][0][0] == "how was your day? I broke my wrist"


def test_the_choice_passes_over_a_corpus_reply_with_a_defect() -> None:
    ranker = ScriptedRanker({"hey there! how are you?": 0.9, "Oh no, is it broken?": 0.4})
    hybrid = Hybrid(CORPUS, ranker, HybridConfig(retrieved=3))  # type: ignore[arg-type]
    (pool,) = rank_pools(hybrid, [["I broke my phone"]], [generated("Oh no, is it broken?")])
    choice = choose_among(pool, "I broke my phone")
    assert choice.text.endswith("Oh no, is it broken?") and choice.source == "generated"
    assert "greeting" in choice.candidates[0]["defects"]
    assert {c["source"] for c in choice.candidates} == {"generated", "retrieved"}


def test_no_corpus_replies_without_the_checkpoints_word(tmp_path: object) -> None:
    assert load_hybrid("unused", {"data": {"task": "tsv"}}, "unused") is None
    with pytest.raises(ValueError, match="bad hybrid settings"):
        load_hybrid("ckpt", {"hybrid": {"retrieved": -1}}, "unused")
    with pytest.raises(ValueError, match="bad hybrid settings"):
        load_hybrid("ckpt", {"hybrid": {"retreived": 5}}, "unused")


def test_the_ranker_reads_the_last_two_turns() -> None:
    assert conversation_text(["a", " b ", "c?"]) == "b c?"
    assert conversation_text(["", "only"]) == "only"


@pytest.mark.slow
def test_the_packaged_ranker_prefers_a_reply_about_the_message(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    ranker = Ranker.load()
    caplog.set_level(logging.INFO)  # as in a worker: the encoder drew a progress bar per call
    (scores,) = ranker.scores(
        ["I broke my wrist playing soccer"],
        [["Ouch! Does it still hurt? How long until you can play again?", "I love pizza."]],
    )
    assert scores[0] > scores[1]
    assert "Batches" not in capfd.readouterr().err
    with pytest.raises(ValueError, match="conversations"):
        ranker.scores(["a", "b"], [["x"]])


def test_bad_news_gets_a_sympathetic_candidate_before_a_prefixed_one() -> None:
    pool = [
        Candidate("Do you like volleyball?", "retrieved", {"score": 0.6}),
        Candidate("Oh no, I'm so sorry. How is she doing?", "retrieved", {"score": 0.5}),
    ]
    choice = choose_among(pool, "my grandmother passed away last week")
    assert choice.text == "Oh no, I'm so sorry. How is she doing?" and choice.index == 1
    alone = choose_among(pool[:1], "my grandmother passed away last week")
    assert alone.text == "I'm sorry to hear that. Do you like volleyball?"


class CountingRanker:
    """A ranker whose vectors are word counts over a tiny vocabulary; counts what it encodes."""

    name = "counting"
    WORDS = ("wrist", "ouch", "phone", "hey", "yeah", "broke", "how")

    def __init__(self) -> None:
        self.encoded: list[str] = []

    def key(self) -> str:
        return "counting-1"

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        self.encoded += list(texts)
        rows = [[t.lower().count(w) + 0.01 for w in self.WORDS] for t in texts]
        return torch.nn.functional.normalize(torch.tensor(rows), dim=-1)

    def embed_all(self, texts: Sequence[str], progress: bool = True) -> torch.Tensor:
        return self.embed(texts).half()

    scores = Ranker.scores


def test_corpus_vectors_are_built_once_and_spare_the_encoder(tmp_path: Path) -> None:
    index = CorpusIndex.build(CORPUS_PAIRS)
    index.save(tmp_path / "index")
    index = CorpusIndex.load(tmp_path / "index")
    ranker = CountingRanker()
    assert cached_vectors(index, ranker) is None  # type: ignore[arg-type]
    path = build_vectors(index, ranker, progress=False)  # type: ignore[arg-type]
    vectors = cached_vectors(index, ranker)  # type: ignore[arg-type]
    assert path.parent == tmp_path / "index" and vectors is not None
    assert vectors.shape == (len(index), len(CountingRanker.WORDS))
    slow = Hybrid(index, ranker, HybridConfig(retrieved=3))  # type: ignore[arg-type]
    fast = replace(slow, vectors=vectors)
    ranker.encoded.clear()
    (with_vectors,) = rank_pools(fast, [["I broke my wrist"]], [generated("how?")])
    assert ranker.encoded == ["I broke my wrist", "how?"]  # no corpus reply encoded again
    ranker.encoded.clear()
    (without,) = rank_pools(slow, [["I broke my wrist"]], [generated("how?")])
    assert len(ranker.encoded) > 2
    assert [c.text for c in with_vectors] == [c.text for c in without]
    assert [c.scores["score"] for c in with_vectors] == pytest.approx(
        [c.scores["score"] for c in without], abs=1e-3
    )


def test_a_person_saying_a_word_twice_is_not_a_decoders_loop() -> None:
    message = "My brother snowboards and falls down so much. Skiing is better."
    person = "Snowboarding is cool too, I just favor skiing more. Do you ski often?"
    decoder = "I love skiing. I am going skiing with my friends."
    pool = [Candidate(decoder, "generated"), Candidate(person, "retrieved")]
    choice = choose_among(pool, message)
    assert choice.text == person  # the corpus reply, though "skiing" comes twice
    assert "repetition" in choice.candidates[0]["defects"]  # the decoder's twice is a loop
    stutter = Candidate("I love love it", "retrieved")
    assert "repetition" in choose_among([stutter], message).candidates[0]["defects"]
