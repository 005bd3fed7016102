"""Reply-quality measures: sign-offs, greetings, repetition, copying."""

from __future__ import annotations

import pytest

from s2s_core.quality import (
    copy_rate,
    defects,
    has_repetition,
    is_bad_news,
    is_cheerful,
    is_stock,
    quality_rates,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I love food, food is good, and good food is the best food", True),
        ("food food is great", True),
        ("I like dogs and cats.", False),
        ("I think I would like that, I guess.", False),
    ],
)
def test_repetition(text: str, expected: bool) -> None:
    assert has_repetition(text) is expected


def test_a_content_word_said_twice_is_a_defect() -> None:
    reply = "Me too! I like to eat food, but I like it too. I love food too!"
    assert defects(reply, "what do you like?") == ["repetition"]


def test_defects_depend_on_the_message() -> None:
    assert defects("Hey! How are you?", "My grandmother passed away") == ["greeting"]
    assert defects("Hey! How are you?", "Hi there") == []
    assert defects("Nice! I have to go now, bye!", "I got a job") == ["sign_off"]
    assert defects("Bye, take care!", "I have to go, bye") == []
    assert defects("I love pizza, pizza is the best", "food?") == ["repetition"]


def test_copy_rate_counts_echoed_words() -> None:
    assert copy_rate("I love dogs", "I love dogs") == 1.0
    assert copy_rate("cats are fun", "I love dogs") == 0.0


def test_rates_are_shares_of_replies() -> None:
    rates = quality_rates(["Hey! How are you?", "Cool.", "bye!", "ok ok"], ["news"] * 4)
    assert rates["greeting_to_non_greeting_rate"] == 0.25
    assert rates["sign_off_rate"] == 0.25
    assert rates["repetition_rate"] == 0.25


@pytest.mark.parametrize(
    ("message", "bad"),
    [
        ("My grandmother passed away last week.", True),
        ("I lost my job today.", True),
        ("I feel kind of lonely lately.", True),
        ("My dog is sick and I'm worried about him.", True),
        ("I failed my driving test again.", True),
        ("I broke my wrist last year playing soccer.", True),
        ("I'm scared, the biopsy results come tomorrow.", True),
        ("I'm scared of losing my job.", True),
        ("It split down the middle... now i have a plate and 8 screws in my wrist", True),
        ("I sprained my ankle and need surgery.", True),
        ("Do you like the ocean? I would be too afraid of sharks...", False),
        ("I got a promotion at work.", False),
        ("I love watching old horror movies.", False),
        ("Do you like cooking? I made lasagna yesterday.", False),
    ],
)
def test_bad_news(message: str, bad: bool) -> None:
    assert is_bad_news(message) is bad


def test_cheering_at_bad_news_is_a_defect() -> None:
    cheer = "That's so cool! I love it."
    assert is_cheerful(cheer) and not is_cheerful("I'm sorry. What happened?")
    assert is_cheerful("I'm sorry to hear that. I am so excited for it.")
    assert defects(cheer, "My grandmother passed away") == ["cheer_to_bad_news"]
    assert defects(cheer, "I got a promotion") == []
    rates = quality_rates([cheer, cheer], ["My grandmother passed away", "I got a promotion"])
    assert rates["cheer_to_bad_news_rate"] == 0.5


@pytest.mark.parametrize(
    ("reply", "stock"),
    [
        ("I don't think I've ever heard of that one!", True),
        ("I'm not sure if I've ever heard of that one before.", True),
        ("I've never heard of that before!", True),
        ("I'm not sure what I'm going to do with it.", True),
        ("I don't know what I'm saying.", True),
        ("I'm going to be a freshman this fall.", True),
        ("I have a friend who is going to go to BYU.", True),
        ("Have you ever heard of Radiohead?", False),  # a question back is an answer
        ("I'm sorry to hear that. What happened?", False),
        ("I love italian food! What about you?", False),
    ],
)
def test_stock_sentences(reply: str, stock: bool) -> None:
    assert is_stock(reply) is stock


def test_the_stock_sentence_rate_counts_only_unprompted_ones() -> None:
    rates = quality_rates(
        ["I've never heard of that one.", "I've never heard of it either.", "Nice!"],
        ["Tell me a joke.", "I've never heard of Lorde.", "I got a job."],
    )
    assert rates["stock_phrase_rate"] == pytest.approx(1 / 3)
