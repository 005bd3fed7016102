from __future__ import annotations

from pathlib import Path

import pytest

from s2s_core import Tokenizer
from s2s_core.special import EOS_ID, SPECIAL_TOKENS

CORPUS = [
    "hello there, how are you doing today?",
    "I'm fine thanks! what about you?",
    "こんにちは、元気ですか？",
    "great 👍 see you soon 🙂",
] * 20


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.train(CORPUS, vocab_size=400)


@pytest.mark.parametrize(
    "text",
    [
        "hello there, how are you doing today?",
        "  leading and trailing spaces  ",
        "日本語の文章。スペースなし",
        "emoji 👍🏽🙂🇯🇵 and ZWJ 👩‍👩‍👧",
        "punctuation!?.,;:'\"()[]{}<>@#$%^&*~`|\\/",
        "tabs\tand\nnewlines",
        "never seen: Ωμέγα ñandú",
    ],
)
def test_round_trip(tokenizer: Tokenizer, text: str) -> None:
    ids = tokenizer.encode(text)
    assert ids and all(isinstance(i, int) for i in ids)
    assert tokenizer.decode(ids) == text


def test_special_ids_and_forged_markers(tokenizer: Tokenizer) -> None:
    for expected, token in enumerate(SPECIAL_TOKENS):
        assert tokenizer._backend.token_to_id(token) == expected
    ids = tokenizer.encode("<eos> <pad>")
    assert EOS_ID not in ids and 0 not in ids  # typed markers are plain text
    assert tokenizer.decode(ids) == "<eos> <pad>"
    assert tokenizer.decode([1, *tokenizer.encode("hi"), EOS_ID, 0]) == "hi"


def test_save_load(tokenizer: Tokenizer, tmp_path: Path) -> None:
    tokenizer.save(tmp_path / "tok.json")
    loaded = Tokenizer.load(tmp_path / "tok.json")
    assert loaded.vocab_size == tokenizer.vocab_size
    assert loaded.encode_batch(CORPUS[:4]) == tokenizer.encode_batch(CORPUS[:4])


def test_vocab_size_too_small() -> None:
    with pytest.raises(ValueError, match="vocab_size"):
        Tokenizer.train(CORPUS, vocab_size=100)
