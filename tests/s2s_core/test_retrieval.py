"""Corpus retrieval: what it finds, what it may never find, and its cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from s2s_core import retrieval
from s2s_core.corpora import Example, Turn, chitchat_examples
from s2s_core.retrieval import CorpusIndex, corpus_pairs


def pair(before: str, message: str, reply: str) -> Example:
    return Example((Turn(before, "bot"), Turn(message, "user")), reply)


PAIRS = [
    pair("what do you do for fun", "I play soccer every weekend", "Which position do you play?"),
    pair("any pets?", "I just adopted two kittens", "Aww, what are their names?"),
    pair("how was your day", "I broke my wrist playing soccer", "Ouch! How did it happen?"),
    pair("do you cook", "I made pasta for dinner", "Yum, what kind of sauce?"),
    pair("any plans", "I made pasta for dinner", "Yum, what kind of sauce?"),
    pair("movies?", "I love horror movies", "Me too, have you seen Hereditary?"),
]


def texts(found: list[retrieval.Retrieved]) -> list[str]:
    return [r.text for r in found]


def test_finds_the_replies_to_messages_like_this_one() -> None:
    index = CorpusIndex.build(PAIRS)
    found = index.search([["hi", "My kitten is adorable"]], k=3)[0]
    assert texts(found)[0] == "Aww, what are their names?"  # stemmed: kitten ~ kittens
    assert all(r.score > 0 for r in found)


def test_the_turn_before_the_message_breaks_ties() -> None:
    index = CorpusIndex.build(PAIRS)
    alone = texts(index.search([["soccer"]], k=2)[0])
    assert set(alone) == {"Which position do you play?", "Ouch! How did it happen?"}
    after_a_bad_day = index.search([["how was your day", "soccer"]], k=1)[0]
    assert texts(after_a_bad_day) == ["Ouch! How did it happen?"]


def test_each_reply_text_once_and_nothing_for_no_words() -> None:
    index = CorpusIndex.build(PAIRS)
    found = texts(index.search([["pasta for dinner"]], k=5)[0])
    assert found.count("Yum, what kind of sauce?") == 1
    assert index.search([["?!"], []], k=3) == [[], []]


def test_saved_and_loaded_alike(tmp_path: Path) -> None:
    index = CorpusIndex.build(PAIRS)
    index.save(tmp_path / "index")
    loaded = CorpusIndex.load(tmp_path / "index")
    query = [["movies?", "I love horror films"]]
    assert loaded.search(query, 3) == index.search(query, 3) and len(loaded) == len(PAIRS)


def test_cached_builds_once_and_rebuilds_a_half_written_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[int] = []

    def fake_pairs(split_seed: int = 13) -> list[Example]:
        built.append(split_seed)
        return PAIRS

    monkeypatch.setattr(retrieval, "corpus_pairs", fake_pairs)
    first = CorpusIndex.cached(tmp_path)
    again = CorpusIndex.cached(tmp_path)
    assert built == [13] and len(again) == len(first)
    (folder,) = tmp_path.iterdir()
    (folder / "replies.json").unlink()  # as if the build had been killed before its end
    CorpusIndex.cached(tmp_path)
    assert built == [13, 13]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


@pytest.mark.slow
def test_the_index_holds_the_training_split_only() -> None:
    """No reply of a validation or test conversation can be retrieved (they judge the
    result), unless the same words were also said in a training conversation."""
    pairs = corpus_pairs()
    train_replies = {ex.response for ex in chitchat_examples("train")}
    held_out = [*chitchat_examples("valid")[:300], *chitchat_examples("test")[:300]]
    only_held_out = {ex.response for ex in held_out} - train_replies
    index = CorpusIndex.build(pairs)
    found = index.search([[t.text for t in ex.context] for ex in held_out], k=20)
    assert only_held_out and not only_held_out & {r.text for rs in found for r in rs}


def test_hard_negatives_are_replies_to_similar_conversations_never_its_own() -> None:
    filler = [pair("so", f"word{i} thing{i}", f"reply {i}") for i in range(30)]
    pairs = [
        pair("hobbies?", "I play soccer every weekend", "Which position do you play?"),
        pair("and then?", "I play soccer with my team", "Nice, are you any good?"),  # same chat
        *filler,
        pair("sports?", "I play soccer on tuesdays", "Cool, what team?"),
        pair("weekend?", "soccer every weekend for me", "Which position do you play?"),
    ]
    index = CorpusIndex.build(pairs)
    found = retrieval.hard_negatives(index, pairs, k=3)([0])[0]
    assert "Cool, what team?" in found
    assert "Which position do you play?" not in found  # its own reply, also under another row
    assert "Nice, are you any good?" not in found  # a row nearby: likely its own conversation
    with pytest.raises(ValueError, match="not these"):
        retrieval.hard_negatives(index, pairs[:-1])
