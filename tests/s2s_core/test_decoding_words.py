"""Word-level repetition rules: a content word at most ``max_word_uses`` times, no word
twice in a row, on a real byte-level BPE tokenizer."""

from __future__ import annotations

import pytest
import torch

from s2s_core import DecodeConfig, generate
from s2s_core.decoding import WordTable, word_table
from s2s_core.decoding.words import block_word_repeats
from s2s_core.quality import has_repetition
from s2s_core.special import EOS_ID
from s2s_core.tokenizer import Tokenizer
from tests.utils.fake_models import TableModel

TEXTS = ["I love food and pizza, the music is great. Food is good"] * 20


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.train(TEXTS, vocab_size=320)


def one(tokenizer: Tokenizer, text: str) -> int:
    ids = tokenizer.encode(text)
    assert len(ids) == 1, f"{text!r} is {len(ids)} tokens in this tokenizer"
    return ids[0]


def banned_after(tokenizer: Tokenizer, history: str, max_uses: int = 2) -> set[str]:
    """The words (as space-initial tokens) banned after ``history``."""
    ids = torch.tensor([tokenizer.encode(history)])
    lprobs = torch.zeros(1, tokenizer.vocab_size)
    block_word_repeats(lprobs, ids, word_table(tokenizer), max_uses)
    return {tokenizer.decode([i]) for i in (lprobs[0] == float("-inf")).nonzero()[:, 0].tolist()}


def test_the_table_knows_words_function_words_and_pieces(tokenizer: Tokenizer) -> None:
    table = WordTable.from_tokenizer(tokenizer)
    food, spaced_food, the = one(tokenizer, "food"), one(tokenizer, " food"), one(tokenizer, " the")
    assert table.word[food] == table.word[spaced_food] >= 0  # "Food"/" food" are one word
    assert table.spaced[spaced_food] and not table.spaced[food]
    assert table.content[table.word[spaced_food]] and not table.content[table.word[the]]
    assert table.word[one(tokenizer, ",")] == -1 and not table.continues[one(tokenizer, ",")]
    assert table.word[EOS_ID] == -1


def test_a_content_word_is_banned_once_used_max_uses_times(tokenizer: Tokenizer) -> None:
    assert " food" not in banned_after(tokenizer, "I love food and pizza")
    assert " food" in banned_after(tokenizer, "Food is good and I love food and pizza")
    assert " food" not in banned_after(tokenizer, "Food is good, I love food and pizza", 3)


def test_function_words_may_recur_but_never_twice_in_a_row(tokenizer: Tokenizer) -> None:
    assert " the" not in banned_after(tokenizer, "the music and the food and the pizza")
    assert " the" in banned_after(tokenizer, "I love the")


def test_punctuation_does_not_separate_a_word_from_itself(tokenizer: Tokenizer) -> None:
    assert " pizza" in banned_after(tokenizer, "I love pizza,")
    assert " pizza" in banned_after(tokenizer, "I love pizza. ")
    assert " pizza" not in banned_after(tokenizer, "I love pizza, music")


def test_only_space_initial_tokens_are_banned(tokenizer: Tokenizer) -> None:
    banned = banned_after(tokenizer, "Food is good and I love food")
    assert banned and all(text.startswith(" ") for text in banned)


def test_a_looping_model_says_each_content_word_at_most_twice(tokenizer: Tokenizer) -> None:
    food, pizza, comma = one(tokenizer, " food"), one(tokenizer, " pizza"), one(tokenizer, ",")
    loop = TableModel(
        {}, vocab=tokenizer.vocab_size, default={food: 0.5, comma: 0.3, pizza: 0.1, EOS_ID: 0.01}
    )
    cfg = DecodeConfig(strategy="greedy", max_len=8)
    looping = tokenizer.decode(generate(loop, [[4]], cfg)[0][0].tokens)
    assert has_repetition(looping)
    for strategy in ("greedy", "beam"):
        ruled = DecodeConfig(strategy=strategy, beam_size=2, max_len=8, max_word_uses=2)
        text = tokenizer.decode(generate(loop, [[4]], ruled, word_table(tokenizer))[0][0].tokens)
        assert not has_repetition(text), text
        assert text.split().count("food,") + text.split().count("food") <= 2


def test_the_rule_needs_the_tokenizers_table(tokenizer: Tokenizer) -> None:
    cfg = DecodeConfig(max_word_uses=2)
    with pytest.raises(ValueError, match="WordTable"):
        generate(TableModel({}, vocab=tokenizer.vocab_size), [[4]], cfg)
    with pytest.raises(ValueError, match="covers"):
        generate(TableModel({}, vocab=8), [[4]], cfg, word_table(tokenizer))
    with pytest.raises(ValueError, match="max_word_uses"):
        DecodeConfig(max_word_uses=-1)
